//! A BioT notification plugin in Rust: it subscribes itself to a dispatcher, receives
//! notifications, verifies each one's `jwt` with the plugin kit, and prints them.
//!
//! ```sh
//! cargo run --example plugin --features jwt,axum,http-notifier -- --public-key PATH [options]
//! ```
//!
//! - `--public-key PATH` (or `BIOT_PUBLIC_KEY`, the key itself): the platform's public
//!   key, as PEM or as the bare base64 BioT gives plugins. Required.
//! - `--listen ADDR`: where the plugin listens (default `127.0.0.1:8090`); its hook is
//!   `http://ADDR/notification`.
//! - `--dispatcher URL`: the dispatcher's API (default `http://127.0.0.1:8080/dispatcher`).
//! - `--subscribe ENTITY:ACTION`: what to subscribe to (default `patient:_create`; may be
//!   repeated).
//! - `--api-token TOKEN` (or `BIOT_API_TOKEN`): the bearer token for the dispatcher's
//!   API. In BioT, the plugin's service user gets one from
//!   `POST /ums/v2/services/accessToken`.
//! - `--service-key PATH`: FOR LOCAL TESTING ONLY, instead of `--api-token`: sign a
//!   subscribe/unsubscribe token with this private key (PEM), standing in for BioT's
//!   user management service.
//!
//! The plugin subscribes at start (an existing subscription is fine) and unsubscribes
//! on Ctrl-C. A notification that fails verification is answered `401 JWT_ERROR`, as
//! BioT's plugin templates do, and printed as refused with its reason (never the token).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use biot_notifications::api::Permission;
use biot_notifications::token::{
    Claims, NotificationVerifier, PublicKey, SigningKey, TokenVerifier,
};

struct Options {
    public_key: String,
    listen: SocketAddr,
    dispatcher: String,
    subscriptions: Vec<(String, String)>,
    api_token: Option<String>,
    service_key: Option<String>,
}

const USAGE: &str = "usage: plugin --public-key PATH [--listen ADDR] [--dispatcher URL] \
    [--subscribe ENTITY:ACTION]... [--api-token TOKEN | --service-key PATH]";

fn read(path: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))
}

fn parse_args() -> Result<Options, String> {
    let mut public_key = std::env::var("BIOT_PUBLIC_KEY").ok();
    let mut options = Options {
        public_key: String::new(),
        listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
        dispatcher: "http://127.0.0.1:8080/dispatcher".to_owned(),
        subscriptions: Vec::new(),
        api_token: std::env::var("BIOT_API_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
        service_key: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value; {USAGE}"));
        match arg.as_str() {
            "--public-key" => public_key = Some(read(&value()?)?),
            "--listen" => {
                let listen = value()?;
                options.listen = listen
                    .parse()
                    .map_err(|e| format!("--listen {listen}: {e}"))?;
            }
            "--dispatcher" => options.dispatcher = value()?,
            "--subscribe" => {
                let pair = value()?;
                let (entity, action) = pair
                    .split_once(':')
                    .ok_or(format!("--subscribe {pair}: expected ENTITY:ACTION"))?;
                options
                    .subscriptions
                    .push((entity.to_owned(), action.to_owned()));
            }
            "--api-token" => options.api_token = Some(value()?),
            "--service-key" => options.service_key = Some(read(&value()?)?),
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument `{other}`; {USAGE}")),
        }
    }
    options.public_key = public_key.ok_or(format!("--public-key is required; {USAGE}"))?;
    if options.subscriptions.is_empty() {
        options
            .subscriptions
            .push(("patient".to_owned(), "_create".to_owned()));
    }
    Ok(options)
}

/// The hook: one call verifies the request; the notification is printed, or the refusal.
async fn on_notification(
    State(verifier): State<NotificationVerifier>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match verifier.verify(&headers, &body) {
        Ok(verified) => {
            let notification = &verified.notification;
            println!(
                "verified notification: {} {} entity {} (token for {}, expires {})",
                notification.metadata.entity_type_name,
                notification.metadata.action_name,
                notification
                    .data
                    .entity
                    .get("_id")
                    .unwrap_or(&serde_json::Value::Null),
                verified.claims.sub.as_deref().unwrap_or("-"),
                verified
                    .claims
                    .exp
                    .map_or("never".to_owned(), |exp| exp.to_string()),
            );
            StatusCode::OK.into_response()
        }
        Err(refusal) => {
            println!("refused a request: {refusal}");
            refusal.into_response()
        }
    }
}

/// Subscribes or unsubscribes `hook` to each pair; prints each answer.
async fn call_dispatcher(
    options: &Options,
    token: Option<&str>,
    operation: &str,
    hook: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    for (entity, action) in &options.subscriptions {
        let body =
            serde_json::json!({"entityTypeName": entity, "actionName": action, "endpoint": hook});
        let mut request = client
            .post(format!(
                "{}/v1/hooks/notifications/{operation}",
                options.dispatcher
            ))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status();
        let answer = response.text().await?;
        match status.as_u16() {
            200 | 201 | 204 => println!("{operation} {entity}:{action}: {status}"),
            409 if operation == "subscribe" => {
                println!("{operation} {entity}:{action}: already subscribed")
            }
            _ => println!("{operation} {entity}:{action}: {status} {answer}"),
        }
    }
    Ok(())
}

/// The API token: given, or (local testing) signed with `--service-key`.
fn api_token(options: &Options) -> Result<Option<String>, Box<dyn std::error::Error>> {
    if let Some(token) = &options.api_token {
        return Ok(Some(token.clone()));
    }
    let Some(pem) = &options.service_key else {
        return Ok(None);
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let scopes = [
        Permission::Subscribe.as_str(),
        Permission::Unsubscribe.as_str(),
    ];
    let mut claims = Claims::new(scopes, now, 3600);
    claims.sub = Some("example-plugin".to_owned());
    Ok(Some(SigningKey::from_pem(pem)?.sign(&claims)?))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let verifier = NotificationVerifier::new(
        TokenVerifier::new(PublicKey::from_pem_or_base64(&options.public_key)?)
            .with_leeway(Duration::from_secs(30)),
    );
    let app = axum::Router::new()
        .route("/notification", post(on_notification))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let hook = format!("http://{}/notification", listener.local_addr()?);
    println!("plugin listening: {hook}");
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    });

    let token = api_token(&options)?;
    call_dispatcher(&options, token.as_deref(), "subscribe", &hook).await?;
    server.await??;
    call_dispatcher(&options, token.as_deref(), "unsubscribe", &hook).await?;
    Ok(())
}
