//! The webhook side of the drain: a post's body for a leased row, the
//! POST itself through [`crate::webhook`], and what its reply means.

use std::sync::Arc;

use super::{Job, SendError, Shared};
use crate::announce::Announcement;
use crate::clock;
use crate::compose::{Post, RenderedPost};
use crate::endpoint::Endpoint;
use crate::model::{Format, Language};
use crate::webhook;

/// What a webhook's reply means: 2xx sent; 408, 429 and 5xx tried again
/// (after `Retry-After` if it says); 404 and 410 from a chat webhook
/// revoked; any other status (redirects too) parked with the reply kept.
pub fn classify(reply: &webhook::Reply, format: Format) -> Result<(), SendError> {
    match reply.status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(match reply.retry_after {
            Some(after) => SendError::RetryAfter(reply.summary(), after),
            None => SendError::Retry(reply.summary()),
        }),
        404 | 410 if format.is_chat() => Err(SendError::Revoked(reply.summary())),
        _ => Err(SendError::Park(reply.summary())),
    }
}

/// POSTs `post` to `url`, signed with `signing` if given; `Ok` only on a
/// 2xx reply.
pub async fn post(
    client: &webhook::Client,
    url: &str,
    format: Format,
    post: Post,
    signing: Option<&str>,
) -> Result<(), SendError> {
    let endpoint = Endpoint::parse(url).map_err(|refusal| SendError::Park(refusal.to_string()))?;
    let mut headers = vec![("idempotency-key", post.key)];
    if let Some(secret) = signing {
        let timestamp = clock::now().timestamp();
        headers.push((
            "herald-signature",
            crate::token::signature(secret, timestamp, &post.body),
        ));
    }
    let request = webhook::Request {
        method: hyper::Method::POST,
        endpoint: &endpoint,
        body: post.body.into(),
        headers,
    };
    match client.post(&request).await {
        Ok(reply) => classify(&reply, format),
        Err(webhook::Failure::Refused(refusal)) => Err(SendError::Park(refusal.to_string())),
        Err(webhook::Failure::Network(reason)) => Err(SendError::Retry(reason)),
    }
}

impl Shared {
    /// The post body of `announcement` for `language` and `format`,
    /// rendered once.
    pub(super) fn rendered_post(
        &self,
        id: i64,
        announcement: &Announcement,
        language: Language,
        format: Format,
    ) -> Arc<RenderedPost> {
        let Ok(rendered) =
            self.posts
                .get_or_make((id, language, format), |(_, language, format)| {
                    Ok::<_, std::convert::Infallible>(Arc::new(self.composer.render_post(
                        &self.config,
                        announcement,
                        *language,
                        *format,
                    )))
                });
        rendered
    }

    /// The `component_update` body of `component` in `announcement`,
    /// rendered once.
    fn rendered_component_post(
        &self,
        id: i64,
        announcement: &Announcement,
        component: &str,
    ) -> Option<Arc<RenderedPost>> {
        let Ok(rendered) =
            self.component_posts
                .get_or_make((id, component.to_owned()), |(_, component)| {
                    Ok::<_, std::convert::Infallible>(
                        self.composer
                            .render_component_post(&self.config, announcement, component)
                            .map(Arc::new),
                    )
                });
        rendered
    }
}

/// The post of `job` to a webhook, and the secret to sign it with (a
/// confirmation too: its JSON tells the secret, so a receiver can check
/// the very first post).
pub(super) fn compose_post(
    shared: &Shared,
    job: &Job,
    format: Format,
) -> Result<(Post, Option<String>), SendError> {
    match job {
        Job::Confirm(row) => Ok((
            shared
                .composer
                .post_confirmation(&shared.config, &row.confirmation, format),
            row.confirmation.signing.clone(),
        )),
        Job::Alert(row) => {
            let announcement = shared
                .announcement(row.announcement)
                .map_err(|error| SendError::Retry(format!("{:#}", anyhow::Error::from(error))))?
                .ok_or_else(|| {
                    SendError::Park("the announcement is missing from the database".into())
                })?;
            let subscriber = &row.subscriber;
            if let Some(component) = &row.component {
                // Only JSON webhooks are queued these (`Store::enqueue`).
                let post = (format == Format::Json)
                    .then(|| {
                        let rendered = shared.rendered_component_post(
                            row.announcement,
                            &announcement,
                            component,
                        )?;
                        rendered.fill(&subscriber.token).or_else(|| {
                            shared.composer.component_post(
                                &shared.config,
                                &announcement,
                                component,
                                subscriber,
                            )
                        })
                    })
                    .flatten()
                    .ok_or_else(|| {
                        SendError::Park(format!(
                            "no component update of {component} to post in this format"
                        ))
                    })?;
                return Ok((post, subscriber.signing.clone()));
            }
            let rendered =
                shared.rendered_post(row.announcement, &announcement, subscriber.language, format);
            let post = rendered.fill(&subscriber.token).unwrap_or_else(|| {
                shared
                    .composer
                    .post(&shared.config, &announcement, subscriber, format)
            });
            Ok((post, subscriber.signing.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn webhook_replies_are_sent_retried_revoked_or_parked() {
        let reply = |status, retry_after| webhook::Reply {
            status,
            retry_after,
            body: "why".into(),
        };
        let outcome =
            |status, retry_after, format| match classify(&reply(status, retry_after), format) {
                Ok(()) => "sent".to_owned(),
                Err(SendError::Retry(reply)) => format!("retry {reply}"),
                Err(SendError::RetryAfter(reply, after)) => {
                    format!("retry after {}s {reply}", after.as_secs())
                }
                Err(SendError::Park(reply)) => format!("park {reply}"),
                Err(SendError::Revoked(reply)) => format!("revoked {reply}"),
            };
        let two = Some(Duration::from_secs(2));
        assert_eq!(outcome(200, None, Format::Json), "sent");
        assert_eq!(outcome(204, None, Format::Slack), "sent");
        assert_eq!(outcome(503, None, Format::Json), "retry HTTP 503: why");
        assert_eq!(outcome(408, None, Format::Json), "retry HTTP 408: why");
        assert_eq!(
            outcome(429, two, Format::Json),
            "retry after 2s HTTP 429: why"
        );
        assert_eq!(outcome(410, None, Format::Discord), "revoked HTTP 410: why");
        assert_eq!(outcome(404, None, Format::Teams), "revoked HTTP 404: why");
        // A JSON receiver's 404 may be a deploy gone wrong: parked.
        assert_eq!(outcome(404, None, Format::Json), "park HTTP 404: why");
        assert_eq!(outcome(302, None, Format::Json), "park HTTP 302: why");
        assert_eq!(outcome(400, None, Format::Mattermost), "park HTTP 400: why");
    }
}
