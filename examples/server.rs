//! A runnable BioT notification dispatcher: the subscription API over HTTP, real
//! delivery over HTTP(S), subscriptions in memory.
//!
//! ```sh
//! cargo run --example server --features axum,http-notifier -- [--listen ADDR] [--allow-private-endpoints]
//! cargo run --example server --features axum,http-notifier,postgres -- --database-url postgres://...
//! ```
//!
//! - `--listen ADDR`: where to serve (default `127.0.0.1:8080`).
//! - `--allow-private-endpoints`: accept plugins on loopback and private hosts over plain
//!   `http`, for plugins on your own machine. Never in production.
//! - `--database-url URL` (or `DATABASE_URL`): keep subscriptions in PostgreSQL, shared
//!   by every instance pointed at it (needs the `postgres` feature).
//!
//! Besides BioT's routes under `/dispatcher`, the example serves
//! `POST /dispatcher/v1/events`, a STAND-IN FOR THE PLATFORM'S OWN EVENT SOURCE (in BioT,
//! services report their actions internally; nothing like this route exists there). It
//! takes `{"entityTypeName", "actionName", "entity", "additionalData"?}`, dispatches the
//! event, and answers 202 with the dispatch report.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use biot_notifications::api::{self, Api};
use biot_notifications::notification::Event;
use biot_notifications::notifier::http::HttpNotifier;
use biot_notifications::{Dispatcher, EndpointPolicy, EventType, InMemoryStore, SubscriptionStore};
use serde::Deserialize;
use serde_json::Value;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

struct Options {
    listen: SocketAddr,
    allow_private_endpoints: bool,
    database_url: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        allow_private_endpoints: false,
        database_url: std::env::var("DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => {
                let value = args
                    .next()
                    .ok_or("--listen needs an address, e.g. 127.0.0.1:8080")?;
                options.listen = value
                    .parse()
                    .map_err(|e| format!("--listen {value}: {e}"))?;
            }
            "--allow-private-endpoints" => options.allow_private_endpoints = true,
            "--database-url" => {
                options.database_url = Some(args.next().ok_or("--database-url needs a URL")?);
            }
            "--help" | "-h" => return Err(
                "usage: server [--listen ADDR] [--allow-private-endpoints] [--database-url URL]"
                    .to_owned(),
            ),
            other => return Err(format!("unknown argument `{other}`; see --help")),
        }
    }
    Ok(options)
}

/// The body of the example's stand-in event route.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRequest {
    entity_type_name: String,
    action_name: String,
    entity: Value,
    #[serde(default)]
    additional_data: Option<Value>,
}

async fn trigger_event(
    State(dispatcher): State<Dispatcher>,
    Json(request): Json<EventRequest>,
) -> Response {
    let event_type = match EventType::parse(&request.entity_type_name, &request.action_name) {
        Ok(event_type) => event_type,
        Err(err) => {
            let body = serde_json::json!({"code": err.code(), "message": err.to_string(), "details": err.details()});
            return (err.status(), Json(body)).into_response();
        }
    };
    let mut event = Event::new(event_type, request.entity);
    if let Some(additional_data) = request.additional_data {
        event = event.with_additional_data(additional_data);
    }
    match dispatcher.dispatch(&event).await {
        Ok(report) => (StatusCode::ACCEPTED, Json(report)).into_response(),
        Err(err) => {
            let body = serde_json::json!({"code": err.code(), "message": err.to_string()});
            (err.status(), Json(body)).into_response()
        }
    }
}

/// The example's whole app: BioT's API plus the stand-in event route.
fn app(dispatcher: Dispatcher) -> Router {
    Router::new()
        .route("/dispatcher/v1/events", post(trigger_event))
        .with_state(dispatcher.clone())
        .merge(api::router(Api::new(dispatcher)))
}

/// PostgreSQL when a database URL is given, memory otherwise.
async fn store(
    database_url: Option<&str>,
) -> Result<Arc<dyn SubscriptionStore>, Box<dyn std::error::Error>> {
    match database_url {
        None => {
            println!("subscriptions are kept in memory");
            Ok(Arc::new(InMemoryStore::new()))
        }
        #[cfg(feature = "postgres")]
        Some(url) => {
            let store = biot_notifications::store::PostgresStore::connect(url).await?;
            println!(
                "subscriptions are kept in PostgreSQL (schema {})",
                store.schema()
            );
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "postgres"))]
        Some(_) => {
            Err("--database-url needs the `postgres` feature: add `--features postgres`".into())
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The crate's spans and events: each API call, subscribe, unsubscribe, search and
    // dispatch, and one line per delivery (endpoint, outcome, duration).
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
        .with(
            Targets::new()
                .with_target("biot_notifications", Level::DEBUG)
                .with_default(Level::INFO),
        )
        .init();
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let policy = if options.allow_private_endpoints {
        println!("accepting private and plain-http endpoints (local development only)");
        EndpointPolicy::local_development()
    } else {
        EndpointPolicy::default()
    };
    let notifier = HttpNotifier::new(policy.clone())?;
    let dispatcher = Dispatcher::builder(
        store(options.database_url.as_deref()).await?,
        Arc::new(notifier),
    )
    .endpoint_policy(policy)
    .build();

    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    println!(
        "dispatcher listening on http://{}/dispatcher",
        listener.local_addr()?
    );
    axum::serve(listener, app(dispatcher))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
