//! `PostgresStore` over TLS against a real PostgreSQL: each `sslmode` does what libpq's
//! does, roots given in code or by `sslrootcert`, host names checked or not, and
//! channel binding.
//!
//! The server must speak TLS with a certificate for the DNS name `localhost` only,
//! signed by the CA in `BIOT_PG_TLS_CA`, as `.ci/postgres.sh` sets it up. The tests
//! reach it at `hostaddr=127.0.0.1` and choose the name that is checked with `host`:
//! `localhost` (the certificate's) or `wrong.example` (not).
//!
//! Like tests/postgres_store.rs, every test is `#[ignore]`d and fails, saying what is
//! missing, when run without its environment:
//!
//! ```text
//! source .ci/postgres.sh   # exports DATABASE_URL and BIOT_PG_TLS_CA, among others
//! cargo test --features postgres --test postgres_tls -- --include-ignored
//! biot_pg_stop
//! ```

use std::net::IpAddr;
use std::str::FromStr;

use biot_notifications::store::postgres::deadpool_postgres::tokio_postgres::config::Host;
use biot_notifications::store::postgres::deadpool_postgres::tokio_postgres::Config;
use biot_notifications::store::postgres::{PostgresOptions, PostgresSetupError, PostgresStore};
use biot_notifications::store::SubscriptionStore;
use biot_notifications::{Action, EntityType, EventType, SubscribeRequest, Subscription};
use uuid::Uuid;

mod common;

/// A CA that signed nothing the test server holds (the crate's unit-test root).
const OTHER_CA_PEM: &[u8] = include_bytes!("../src/store/postgres/connection/test_ca.pem");

/// The role `.ci/postgres.sh` lets in only over TLS with a SCRAM password.
const SCRAM_ROLE: &str = "biot_tls_scram";
const SCRAM_PASSWORD: &str = "throwaway-scram-password";

/// Where the test server is, from DATABASE_URL, and its CA.
struct Server {
    address: IpAddr,
    port: u16,
    user: String,
    dbname: String,
    ca_path: String,
}

impl Server {
    #[track_caller]
    fn from_env() -> Server {
        let url = common::database_url();
        let ca_path = common::required_env(
            "BIOT_PG_TLS_CA",
            "the PEM certificate of the CA that signed the server's TLS certificate",
        );
        let config = Config::from_str(&url).expect("DATABASE_URL is a valid URL");
        let address = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.parse().unwrap_or_else(|_| {
                panic!("these tests need DATABASE_URL's host as an IP address (e.g. 127.0.0.1)")
            }),
            _ => panic!("these tests need DATABASE_URL with a TCP host"),
        };
        Server {
            address,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config.get_user().unwrap_or("postgres").to_owned(),
            dbname: config.get_dbname().unwrap_or("postgres").to_owned(),
            ca_path,
        }
    }

    fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca_path).expect("BIOT_PG_TLS_CA can be read")
    }

    /// A key-value URL that connects to the server's address while `host` is the name
    /// TLS checks; `extra` is appended as is.
    fn key_value(&self, host: &str, extra: &str) -> String {
        format!(
            "host={host} hostaddr={} port={} user={} dbname={} {extra}",
            self.address, self.port, self.user, self.dbname
        )
    }

    /// The same as a `postgres://` URL (`hostaddr` as a query parameter).
    fn url(&self, host: &str, query: &str) -> String {
        format!(
            "postgres://{}@{host}:{}/{}?hostaddr={}&{query}",
            self.user, self.port, self.dbname, self.address
        )
    }
}

fn options() -> PostgresOptions {
    PostgresStore::options().schema(format!("t_{}", Uuid::new_v4().simple()))
}

async fn connect(options: PostgresOptions, url: &str) -> PostgresStore {
    options
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting failed: {}", chain(&e)))
}

async fn refused(options: PostgresOptions, url: &str) -> PostgresSetupError {
    match options.connect(url).await {
        Ok(store) => {
            drop_schema(&store).await;
            panic!("the connection was accepted")
        }
        Err(e) => e,
    }
}

/// An error's message and all its sources', for assertions and failure messages.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(" <- ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// Whether the store's connections use TLS, as the server sees it.
async fn session_is_tls(store: &PostgresStore) -> bool {
    let client = store.pool().get().await.expect("a connection");
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0)
}

async fn drop_schema(store: &PostgresStore) {
    let client = store.pool().get().await.expect("a connection");
    client
        .batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", store.schema()))
        .await
        .expect("drop the test schema");
}

/// A store operation round trip: what TLS is for.
async fn insert_and_match(store: &PostgresStore) {
    let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/tls")
        .key()
        .expect("a valid subscription");
    store.insert(Subscription::new(key)).await.expect("insert");
    let created = EventType::new(EntityType::Patient, Action::Create).expect("an event type");
    assert_eq!(
        store.matching(created, None).await.expect("matching").len(),
        1
    );
}

#[track_caller]
fn assert_certificate_problem(error: &PostgresSetupError, expected: &str) {
    let text = chain(error);
    assert!(
        matches!(error, PostgresSetupError::Store(_)),
        "refused at connection, not configuration: {text}"
    );
    assert!(
        text.contains(expected),
        "the source chain should say `{expected}`: {text}"
    );
}

// ---------------------------------------------------------------------------------
// verify-full and verify-ca.

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn verify_full_with_the_right_name_and_the_ca_works_over_tls() {
    let server = Server::from_env();
    let store = connect(
        options().tls_root_certificates(server.ca_pem()),
        &server.key_value("localhost", "sslmode=verify-full"),
    )
    .await;
    insert_and_match(&store).await;
    assert!(session_is_tls(&store).await);
    drop_schema(&store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let server = Server::from_env();
    let error = refused(
        options().tls_root_certificates(server.ca_pem()),
        &server.key_value("wrong.example", "sslmode=verify-full"),
    )
    .await;
    assert_certificate_problem(&error, "certificate not valid for name");
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn verify_ca_accepts_a_certificate_for_another_name() {
    let server = Server::from_env();
    let store = connect(
        options().tls_root_certificates(server.ca_pem()),
        &server.key_value("wrong.example", "sslmode=verify-ca"),
    )
    .await;
    insert_and_match(&store).await;
    assert!(session_is_tls(&store).await);
    drop_schema(&store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn verifying_modes_refuse_a_server_from_another_ca() {
    let server = Server::from_env();
    for mode in ["verify-ca", "verify-full"] {
        let error = refused(
            options().tls_root_certificates(OTHER_CA_PEM),
            &server.key_value("localhost", &format!("sslmode={mode}")),
        )
        .await;
        assert_certificate_problem(&error, "UnknownIssuer");
    }
    // Given roots make require check the chain too, as libpq with a root file.
    let error = refused(
        options().tls_root_certificates(OTHER_CA_PEM),
        &server.key_value("localhost", "sslmode=require"),
    )
    .await;
    assert_certificate_problem(&error, "UnknownIssuer");
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn the_system_roots_do_not_trust_a_throwaway_ca() {
    let server = Server::from_env();
    for url in [
        server.key_value("localhost", "sslrootcert=system"),
        server.key_value("localhost", "sslmode=verify-full sslrootcert=system"),
        // No roots named: verify-ca takes the system's.
        server.key_value("localhost", "sslmode=verify-ca"),
    ] {
        match options().connect(&url).await {
            Ok(store) => {
                drop_schema(&store).await;
                panic!("{url}: accepted")
            }
            Err(error @ PostgresSetupError::Store(_)) => {
                assert_certificate_problem(&error, "UnknownIssuer")
            }
            // A machine without a system store refuses before connecting: also a refusal.
            Err(PostgresSetupError::TlsRootCertificates { .. }) => {}
            Err(other) => panic!("{url}: {}", chain(&other)),
        }
    }
}

// ---------------------------------------------------------------------------------
// sslrootcert in the URL.

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn sslrootcert_in_the_url_works_as_roots_given_in_code() {
    let server = Server::from_env();
    let encoded: String = url_encoded(&server.ca_path);
    for url in [
        server.key_value(
            "localhost",
            &format!("sslmode=verify-full sslrootcert='{}'", server.ca_path),
        ),
        server.url(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={encoded}"),
        ),
    ] {
        let store = connect(options(), &url).await;
        insert_and_match(&store).await;
        assert!(session_is_tls(&store).await, "{url}");
        drop_schema(&store).await;
    }
    for url in [
        server.key_value(
            "wrong.example",
            &format!("sslmode=verify-full sslrootcert={}", server.ca_path),
        ),
        server.url(
            "wrong.example",
            &format!("sslmode=verify-full&sslrootcert={encoded}"),
        ),
    ] {
        let error = refused(options(), &url).await;
        assert_certificate_problem(&error, "certificate not valid for name");
    }
    let store = connect(
        options(),
        &server.url(
            "wrong.example",
            &format!("sslmode=verify-ca&sslrootcert={encoded}"),
        ),
    )
    .await;
    assert!(session_is_tls(&store).await);
    drop_schema(&store).await;
}

/// `text` percent-encoded for a URL's query.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// The modes that do not check certificates.

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn require_without_roots_uses_tls_without_checking() {
    let server = Server::from_env();
    // Neither the name nor the CA is known, and it does not matter.
    let store = connect(
        options(),
        &server.key_value("wrong.example", "sslmode=require"),
    )
    .await;
    insert_and_match(&store).await;
    assert!(session_is_tls(&store).await);
    drop_schema(&store).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn prefer_and_the_default_use_tls_when_the_server_offers_it() {
    let server = Server::from_env();
    for url in [
        server.key_value("localhost", "sslmode=prefer"),
        server.key_value("localhost", ""),
        common::database_url(),
    ] {
        let store = connect(options(), &url).await;
        assert!(session_is_tls(&store).await, "{url}");
        drop_schema(&store).await;
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn disable_stays_plain() {
    let server = Server::from_env();
    for url in [
        server.key_value("localhost", "sslmode=disable"),
        server.url("localhost", "sslmode=disable"),
    ] {
        let store = connect(options(), &url).await;
        insert_and_match(&store).await;
        assert!(!session_is_tls(&store).await, "{url}");
        drop_schema(&store).await;
    }
}

// ---------------------------------------------------------------------------------
// Channel binding.

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn scram_with_channel_binding_works_over_tls() {
    let server = Server::from_env();
    // The role `.ci/postgres.sh` admits only over TLS with a SCRAM password.
    let admin = connect(options(), &common::database_url()).await;
    admin
        .pool()
        .get()
        .await
        .expect("a connection")
        .batch_execute(&format!(
            "DO $$ BEGIN
                IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SCRAM_ROLE}') THEN
                    CREATE ROLE {SCRAM_ROLE} LOGIN;
                END IF;
            END $$;
            SET password_encryption = 'scram-sha-256';
            ALTER ROLE {SCRAM_ROLE} PASSWORD '{SCRAM_PASSWORD}';
            GRANT CREATE ON DATABASE \"{}\" TO {SCRAM_ROLE};",
            server.dbname
        ))
        .await
        .expect("create the SCRAM role");
    drop_schema(&admin).await;

    let as_scram_role = |extra: &str| {
        format!(
            "host=localhost hostaddr={} port={} dbname={} user={SCRAM_ROLE} \
             password={SCRAM_PASSWORD} {extra}",
            server.address, server.port, server.dbname
        )
    };
    // channel_binding=require fails unless SCRAM-SHA-256-PLUS was used.
    let store = connect(
        options().tls_root_certificates(server.ca_pem()),
        &as_scram_role("sslmode=verify-full channel_binding=require"),
    )
    .await;
    insert_and_match(&store).await;
    drop_schema(&store).await;
    let store = connect(
        options(),
        &as_scram_role("sslmode=require channel_binding=require"),
    )
    .await;
    assert!(session_is_tls(&store).await);
    drop_schema(&store).await;
}

// ---------------------------------------------------------------------------------
// The replicated store: its pool and its listening connection both over verified TLS.

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn the_replicated_store_listens_and_writes_over_verified_tls() {
    use biot_notifications::store::postgres::ReplicatedStore;

    let server = Server::from_env();
    let schema = format!("t_{}", Uuid::new_v4().simple());
    let name = format!("tls_{}", Uuid::new_v4().simple());
    let url = server.key_value(
        "localhost",
        &format!("sslmode=verify-full application_name={name}"),
    );
    let instance = || async {
        ReplicatedStore::options()
            .postgres(
                PostgresStore::options()
                    .schema(&schema)
                    .tls_root_certificates(server.ca_pem()),
            )
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connecting failed: {}", chain(&e)))
    };
    let (a, b) = (instance().await, instance().await);
    let key = SubscribeRequest::new("patient", "_create", "https://plugin.example.com/tls")
        .key()
        .expect("a valid subscription");
    a.insert(Subscription::new(key)).await.expect("insert");
    let created = EventType::new(EntityType::Patient, Action::Create).expect("an event type");
    // B learns of A's write through its listening connection.
    let start = std::time::Instant::now();
    while b
        .matching(created, None)
        .await
        .expect("matching")
        .is_empty()
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "B never saw A's subscription"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Every connection of both instances, the listeners included, is TLS.
    let client = a.postgres().pool().get().await.expect("a connection");
    let row = client
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
            &[&name],
        )
        .await
        .expect("pg_stat_ssl");
    let (connections, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        connections >= 4,
        "two pools and two listeners: {connections}"
    );
    assert!(all_tls);
    drop(client);
    drop_schema(a.postgres()).await;

    // And a wrong name is refused before anything is read.
    let error = ReplicatedStore::options()
        .postgres(options().tls_root_certificates(server.ca_pem()))
        .connect(&server.key_value("wrong.example", "sslmode=verify-full"))
        .await
        .expect_err("a certificate for another name");
    assert_certificate_problem(&error, "certificate not valid for name");
}
