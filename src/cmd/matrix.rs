//! A Matrix room as a subscriber: `herald subscribers add --matrix ROOM`
//! joins the room with herald's account (`[matrix]`), accepting its
//! invitation, so that posting to it works, and names it by its id, an
//! alias resolved by joining.

use crate::clock;
use crate::compose::Composer;
use crate::config::Config;
use crate::driver::InvalidInput;
use crate::mailer::matrix::{Client, Failure, RoomRef};

/// Joins the room `text` names; its id. A room or alias that is not
/// one, no `[matrix]`, and a room herald may not join (not invited, no
/// such alias) are invalid input; a homeserver that cannot be reached or
/// a token that cannot be read are runtime failures.
pub fn join(config: &Config, text: &str) -> anyhow::Result<String> {
    let room = RoomRef::parse(text).map_err(InvalidInput)?;
    let (client, runtime) = account(config)?;
    runtime.block_on(async {
        match client.join(&room).await {
            Ok(id) => Ok(id),
            Err(Failure::Gone(reply)) => {
                let account = client
                    .whoami()
                    .await
                    .unwrap_or_else(|_| "herald's account".to_owned());
                Err(InvalidInput(format!(
                    "{account} cannot join {}: {reply}; invite {account} to the room first (or check the alias)",
                    room.as_str()
                ))
                .into())
            }
            Err(failure) => Err(anyhow::anyhow!(
                "cannot join {}: {}",
                room.as_str(),
                failure.reply()
            )),
        }
    })
}

/// The room id a subscriber's room is stored as: `text` itself, or the
/// room an alias (`#name:server`) names, asked of the homeserver.
pub fn stored_room(config: &Config, text: &str) -> anyhow::Result<String> {
    let alias = match RoomRef::parse(text).map_err(InvalidInput)? {
        RoomRef::Id(id) => return Ok(id),
        RoomRef::Alias(alias) => alias,
    };
    let (client, runtime) = account(config)?;
    runtime
        .block_on(client.resolve(&alias))
        .map_err(|failure| match failure {
            Failure::Gone(reply) => InvalidInput(format!("no room `{alias}`: {reply}")).into(),
            failure => anyhow::anyhow!("cannot look up {alias}: {}", failure.reply()),
        })
}

/// `herald send-test --matrix ROOM`: one test message to the room (by
/// id or alias), which herald's account must have joined; exit 3 when it
/// cannot be posted.
pub fn send_test(config: &Config, text: &str) -> anyhow::Result<String> {
    let room = stored_room(config, text)?;
    let (client, runtime) = account(config)?;
    let message = Composer::new().matrix_test(config, clock::now());
    runtime
        .block_on(client.send(&room, &message))
        .map(|event| format!("posted to {room} (event {event})"))
        .map_err(|failure| {
            anyhow::anyhow!(
                "cannot post the test message to {room}: {}",
                failure.reply()
            )
        })
}

/// herald's account, and a runtime to use it on.
fn account(config: &Config) -> anyhow::Result<(Client, tokio::runtime::Runtime)> {
    let Some(settings) = &config.matrix else {
        return Err(InvalidInput(format!(
            "a Matrix room needs `[matrix]` in {}: the homeserver and the file with herald's access token",
            config.path.display()
        ))
        .into());
    };
    let http = std::sync::Arc::new(crate::webhook::Client::new(&config.webhooks));
    let client = Client::new(settings, http)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok((client, runtime))
}
