//! The Matrix transport against a loopback HTTP server that answers as
//! told and records what it got.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Mutex;

use axum::Router;
use axum::body::Bytes as AxumBytes;
use axum::extract::State;
use axum::http::{HeaderMap as AxumHeaders, Method as AxumMethod, Uri};
use axum::response::IntoResponse;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::*;

/// What the server got: method, path, `Authorization`, body.
type Got = (String, String, String, String);

struct Server {
    answer: (u16, Vec<(&'static str, &'static str)>, String),
    got: Mutex<Vec<Got>>,
}

async fn answer(
    State(server): State<Arc<Server>>,
    method: AxumMethod,
    uri: Uri,
    headers: AxumHeaders,
    body: AxumBytes,
) -> impl IntoResponse {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    server.got.lock().unwrap().push((
        method.to_string(),
        uri.to_string(),
        authorization,
        String::from_utf8_lossy(&body).into_owned(),
    ));
    let (status, headers, body) = server.answer.clone();
    let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}

/// A server answering every request with `status`, `headers` and `body`,
/// and a client of it with the token `secret`.
async fn server(
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: &str,
) -> (Arc<Server>, Client) {
    let server = Arc::new(Server {
        answer: (status, headers, body.to_owned()),
        got: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&server));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let homeserver = Homeserver::parse(&format!("http://127.0.0.1:{port}/prefix")).unwrap();
    (server, Client::with_token(&homeserver, "secret", http()))
}

/// The webhooks' client with the default `[webhooks]`: no range allowed
/// beyond public addresses, which the homeserver (the operator's
/// configuration) need not be.
fn http() -> Arc<webhook::Client> {
    Arc::new(webhook::Client::new(&crate::config::Webhooks::default()))
}

fn message() -> MatrixMessage {
    MatrixMessage {
        txn_id: "herald-0123".into(),
        content: json!({"msgtype": "m.notice", "body": "hello"}),
    }
}

#[tokio::test]
async fn a_message_is_put_with_the_token_and_its_transaction_id() {
    let (server, client) = server(200, vec![], r#"{"event_id":"$abc"}"#).await;
    let event = client.send("!room:example.org", &message()).await;
    assert_eq!(event, Ok("$abc".to_owned()));
    let got = server.got.lock().unwrap().clone();
    assert_eq!(
        got,
        [(
            "PUT".to_owned(),
            "/prefix/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/herald-0123"
                .to_owned(),
            "Bearer secret".to_owned(),
            r#"{"body":"hello","msgtype":"m.notice"}"#.to_owned(),
        )]
    );
}

#[tokio::test]
async fn joining_an_alias_gives_the_room_id() {
    let (server, client) = server(200, vec![], r#"{"room_id":"!xyz:example.org"}"#).await;
    let room = RoomRef::parse("#status:example.org").unwrap();
    assert_eq!(client.join(&room).await, Ok("!xyz:example.org".to_owned()));
    let got = server.got.lock().unwrap().clone();
    assert_eq!(got[0].0, "POST");
    assert_eq!(
        got[0].1,
        "/prefix/_matrix/client/v3/join/%23status%3Aexample.org"
    );
}

/// A reply (status, headers, body) and what it means.
type Case = (
    u16,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Failure,
);

#[tokio::test]
async fn replies_are_classified() {
    let cases: Vec<Case> = vec![
        (
            429,
            vec![],
            r#"{"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#,
            Failure::Retry {
                reply: r#"429 {"errcode":"M_LIMIT_EXCEEDED","retry_after_ms":2500}"#.into(),
                after: Some(Duration::from_millis(2500)),
            },
        ),
        (
            429,
            vec![("retry-after", "7")],
            "slow down",
            Failure::Retry {
                reply: "429 slow down".into(),
                after: Some(Duration::from_secs(7)),
            },
        ),
        (
            503,
            vec![],
            "",
            Failure::Retry {
                reply: "503".into(),
                after: None,
            },
        ),
        (
            401,
            vec![],
            r#"{"errcode":"M_UNKNOWN_TOKEN"}"#,
            Failure::Retry {
                reply: r#"401 {"errcode":"M_UNKNOWN_TOKEN"}"#.into(),
                after: None,
            },
        ),
        (
            403,
            vec![],
            r#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#,
            Failure::Gone(r#"403 {"errcode":"M_FORBIDDEN","error":"not in room"}"#.into()),
        ),
        (
            404,
            vec![],
            r#"{"errcode":"M_NOT_FOUND"}"#,
            Failure::Gone(r#"404 {"errcode":"M_NOT_FOUND"}"#.into()),
        ),
        (
            404,
            vec![],
            "<html>no\nsuch page</html>",
            Failure::Park("404 <html>no such page</html>".into()),
        ),
        (
            400,
            vec![],
            r#"{"errcode":"M_BAD_JSON"}"#,
            Failure::Park(r#"400 {"errcode":"M_BAD_JSON"}"#.into()),
        ),
        (
            403,
            vec![],
            r#"{"errcode":"M_GUEST_ACCESS_FORBIDDEN"}"#,
            Failure::Park(r#"403 {"errcode":"M_GUEST_ACCESS_FORBIDDEN"}"#.into()),
        ),
    ];
    for (status, headers, body, expected) in cases {
        let (_, client) = server(status, headers, body).await;
        assert_eq!(
            client.send("!r:example.org", &message()).await,
            Err(expected),
            "{status} {body}"
        );
    }
}

#[tokio::test]
async fn a_reply_is_kept_short_and_a_huge_one_not_read_whole() {
    let long = "x".repeat(webhook::REPLY_CAP * 4);
    let (_, client) = server(400, vec![], &long).await;
    // Read up to the client's cap, judged by its status, kept short.
    assert_eq!(
        client.send("!r:example.org", &message()).await,
        Err(Failure::Park(format!("400 {}", "x".repeat(REPLY_KEPT))))
    );
    let (_, client) = server(400, vec![], &"y".repeat(2000)).await;
    let failure = client.send("!r:example.org", &message()).await.unwrap_err();
    assert_eq!(failure.reply().len(), 4 + REPLY_KEPT, "{failure:?}");
}

#[tokio::test]
async fn a_2xx_without_the_event_id_is_parked() {
    let (_, client) = server(200, vec![], "{}").await;
    assert_eq!(
        client.send("!r:example.org", &message()).await,
        Err(Failure::Park(
            "the homeserver's reply has no `event_id`: {}".into()
        ))
    );
}

#[tokio::test]
async fn no_server_is_retried() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let homeserver = Homeserver::parse(&format!("http://127.0.0.1:{port}")).unwrap();
    let client = Client::with_token(&homeserver, "secret", http());
    let failure = client.send("!r:example.org", &message()).await.unwrap_err();
    assert!(
        matches!(&failure, Failure::Retry { reply, after: None }
            if reply.starts_with(&format!("cannot connect to 127.0.0.1:{port}: "))
                && reply.ends_with(&format!("(the homeserver http://127.0.0.1:{port})"))),
        "{failure:?}"
    );
}

#[test]
fn rooms_are_ids_or_aliases() {
    assert_eq!(
        RoomRef::parse(" !abc:example.org "),
        Ok(RoomRef::Id("!abc:example.org".into()))
    );
    assert_eq!(
        RoomRef::parse("!_4x_ke5Mlzf6IvN2CThJmFqNhtl"),
        Ok(RoomRef::Id("!_4x_ke5Mlzf6IvN2CThJmFqNhtl".into()))
    );
    assert_eq!(
        RoomRef::parse("#status:matrix.example.org:8448"),
        Ok(RoomRef::Alias("#status:matrix.example.org:8448".into()))
    );
    for bad in [
        "abc:example.org",
        "!",
        "!:example.org",
        "#status",
        "#:example.org",
        "#a:",
        "!a b:x",
        "@user:x",
        "",
    ] {
        assert_eq!(
            RoomRef::parse(bad),
            Err(format!(
                "`{}` is no Matrix room: expected a room id such as `!abcdef:example.org` or an alias such as `#status:example.org`",
                bad.trim()
            ))
        );
    }
}

#[test]
fn path_segments_are_percent_encoded() {
    assert_eq!(encode("!a/b:c d?#%"), "%21a%2Fb%3Ac%20d%3F%23%25");
    assert_eq!(encode("herald-0a.b_c~"), "herald-0a.b_c~");
}

#[test]
fn the_token_file_must_be_private_and_hold_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matrix-token");
    let homeserver = Homeserver::parse("https://matrix.example.org").unwrap();
    let settings = Settings {
        homeserver,
        access_token_file: path.clone(),
    };
    let error = Client::new(&settings, http()).unwrap_err().to_string();
    assert!(
        error.starts_with("cannot read the Matrix access token file"),
        "{error}"
    );
    std::fs::write(&path, "  syt_secret\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = Client::new(&settings, http()).unwrap_err().to_string();
    assert!(
        error.contains("matrix-token can be read by other users (mode 644); run `chmod 600 "),
        "{error}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_token(&path).unwrap(), "syt_secret");
    assert!(Client::new(&settings, http()).is_ok());
    std::fs::write(&path, "\n").unwrap();
    let error = Client::new(&settings, http()).unwrap_err().to_string();
    assert!(error.ends_with("matrix-token holds no token"), "{error}");
}
