//! Reading `sslmode` and `sslrootcert` out of both URL forms, the libpq rules that pick
//! the verification, and loading roots: no database needed.

use super::*;

/// A self-signed CA certificate (its key was thrown away): usable as a root, nothing else.
const TEST_CA_PEM: &[u8] = include_bytes!("test_ca.pem");

/// The same certificate as a file inside the repository.
const TEST_CA_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/store/postgres/connection/test_ca.pem"
);

fn split(url: &str) -> (String, TlsParameters) {
    split_tls_parameters(url).unwrap_or_else(|e| panic!("{url}: {e:?}"))
}

fn tls(sslmode: Option<&str>, sslrootcert: Option<&str>) -> TlsParameters {
    TlsParameters {
        sslmode: sslmode.map(str::to_owned),
        sslrootcert: sslrootcert.map(str::to_owned),
    }
}

fn settings(url: &str) -> ConnectionSettings {
    ConnectionSettings::from_url(url, None).unwrap_or_else(|e| panic!("{url}: {e:?}"))
}

fn setup_error(url: &str, roots: Option<&[u8]>) -> PostgresSetupError {
    match ConnectionSettings::from_url(url, roots) {
        Ok(_) => panic!("{url} was accepted"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------
// The URL form.

#[test]
fn url_tls_parameters_are_taken_out_and_the_rest_kept_in_order() {
    let (rest, parameters) = split(
        "postgres://app:pw@db.internal:5433/biot?application_name=x&sslmode=verify-full\
         &connect_timeout=3&sslrootcert=/etc/ssl/rds.pem&options=-c%20search_path%3Dy",
    );
    assert_eq!(
        rest,
        "postgres://app:pw@db.internal:5433/biot?application_name=x&connect_timeout=3\
         &options=-c%20search_path%3Dy"
    );
    assert_eq!(
        parameters,
        tls(Some("verify-full"), Some("/etc/ssl/rds.pem"))
    );
}

#[test]
fn url_without_tls_parameters_is_unchanged() {
    for url in [
        "postgres://app@db/biot",
        "postgresql://app@db/biot?user=other",
        "postgres://db",
        "postgres://app@db/biot?",
    ] {
        let (rest, parameters) = split(url);
        assert_eq!(rest, url.trim_end_matches('?'));
        assert_eq!(parameters, TlsParameters::default(), "{url}");
    }
}

#[test]
fn url_with_only_tls_parameters_loses_its_query() {
    let (rest, parameters) = split("postgresql://app@db/biot?sslmode=require&");
    assert_eq!(rest, "postgresql://app@db/biot");
    assert_eq!(parameters, tls(Some("require"), None));
}

#[test]
fn url_keys_and_values_are_percent_decoded() {
    let (rest, parameters) =
        split("postgres://db/biot?ssl%6Dode=verify%2Dca&sslrootcert=%2Ftmp%2Fmy%20ca.pem");
    assert_eq!(rest, "postgres://db/biot");
    assert_eq!(parameters, tls(Some("verify-ca"), Some("/tmp/my ca.pem")));
}

#[test]
fn url_repeated_parameter_keeps_the_last_value_as_libpq() {
    let (_, parameters) = split("postgres://db/biot?sslmode=disable&sslmode=verify-full");
    assert_eq!(parameters, tls(Some("verify-full"), None));
}

#[test]
fn url_question_marks_and_ampersands_in_the_password_are_not_the_query() {
    // tokio-postgres ends the credentials at the first `@`: so does the split.
    let url = "postgres://app:p?ss&sslmode=disable@db/biot?sslmode=require";
    let (rest, parameters) = split(url);
    assert_eq!(rest, "postgres://app:p?ss&sslmode=disable@db/biot");
    assert_eq!(parameters, tls(Some("require"), None));
    let config = settings(url).config;
    assert_eq!(config.get_password(), Some(&b"p?ss&sslmode=disable"[..]));
    assert_eq!(config.get_ssl_mode(), DriverSslMode::Require);
}

#[test]
fn url_undecodable_parameter_is_an_invalid_url() {
    let err = setup_error("postgres://db/biot?sslmode=%FF", None);
    assert!(
        matches!(err, PostgresSetupError::InvalidUrl { .. }),
        "{err:?}"
    );
}

#[test]
fn url_rest_reaches_the_driver_intact() {
    let config = settings(
        "postgres://app:pw@db.internal:5433/biot?sslmode=verify-full&sslrootcert=system\
         &connect_timeout=7&application_name=mine",
    )
    .config;
    assert_eq!(config.get_user(), Some("app"));
    assert_eq!(config.get_dbname(), Some("biot"));
    assert_eq!(config.get_ports(), [5433]);
    assert_eq!(config.get_connect_timeout(), Some(&Duration::from_secs(7)));
    assert_eq!(config.get_application_name(), Some("mine"));
    assert_eq!(config.get_ssl_mode(), DriverSslMode::Require);
}

// ---------------------------------------------------------------------------------
// The key-value form.

#[test]
fn key_value_tls_parameters_are_blanked_out_and_the_rest_kept() {
    let (rest, parameters) = split(
        "host=db.internal sslmode=verify-full user=app sslrootcert='/etc/my ca.pem' dbname=biot",
    );
    assert_eq!(rest, "host=db.internal   user=app   dbname=biot");
    assert_eq!(parameters, tls(Some("verify-full"), Some("/etc/my ca.pem")));
}

#[test]
fn key_value_blanks_quotes_and_escapes_follow_the_driver_grammar() {
    let (rest, parameters) =
        split("  host = db  sslmode =\tverify-ca password='it\\'s' sslrootcert = /a\\ b\\\\c.pem ");
    assert_eq!(rest, "  host = db    password='it\\'s'   ");
    assert_eq!(parameters, tls(Some("verify-ca"), Some("/a b\\c.pem")));
    // Quotes end a quoted value at the first unescaped quote: `'it''s'` is `it`
    // followed by a pair with no `=`, refused like the driver refuses it.
    assert!(split_tls_parameters("password='it''s' user=x").is_err());

    let (rest, parameters) = split("password='a \\'quoted\\' one' sslmode='require'");
    assert_eq!(rest, "password='a \\'quoted\\' one'  ");
    assert_eq!(parameters, tls(Some("require"), None));
    let config = tokio_postgres::Config::from_str(&rest).unwrap();
    assert_eq!(config.get_password(), Some(&b"a 'quoted' one"[..]));
}

#[test]
fn key_value_rest_with_a_root_file_reaches_the_driver_intact() {
    let url = format!(
        "host=localhost hostaddr=127.0.0.1 port=5433 user=app password='s3 cret' \
         sslmode=verify-ca sslrootcert='{TEST_CA_PATH}' dbname=biot"
    );
    let config = settings(&url).config;
    assert_eq!(
        config.get_hostaddrs(),
        ["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(config.get_ports(), [5433]);
    assert_eq!(config.get_password(), Some(&b"s3 cret"[..]));
    assert_eq!(config.get_dbname(), Some("biot"));
    assert_eq!(config.get_ssl_mode(), DriverSslMode::Require);
    assert_eq!(config.get_application_name(), Some(APPLICATION_NAME));
}

#[test]
fn key_value_malformed_is_an_invalid_url_that_does_not_repeat_it() {
    for url in [
        "host=db password='secret-pw",
        "host=db password secret-pw",
        "host=db password= ",
    ] {
        let err = setup_error(url, None);
        assert!(
            matches!(err, PostgresSetupError::InvalidUrl { .. }),
            "{err:?}"
        );
        let chain = crate::wire_error::ErrorChain(&err).to_string();
        assert!(!chain.contains("secret-pw"), "{chain}");
    }
}

#[test]
fn key_value_unknown_parameters_are_still_refused_by_the_driver() {
    let err = setup_error("host=db sslcert=/client.pem", None);
    assert!(
        matches!(err, PostgresSetupError::InvalidUrl { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------
// sslmode values and libpq's rules.

#[test]
fn every_sslmode_maps_to_the_driver_mode_in_both_forms() {
    for (value, driver) in [
        ("disable", DriverSslMode::Disable),
        ("prefer", DriverSslMode::Prefer),
        ("require", DriverSslMode::Require),
        ("verify-ca", DriverSslMode::Require),
        ("verify-full", DriverSslMode::Require),
    ] {
        // A root file, so that the verifying modes need not read the system's store.
        let url = format!("postgres://db/biot?sslmode={value}&sslrootcert={TEST_CA_PATH}");
        assert_eq!(settings(&url).config.get_ssl_mode(), driver, "{url}");
        let key_value = format!("host=db sslmode={value} sslrootcert={TEST_CA_PATH}");
        assert_eq!(
            settings(&key_value).config.get_ssl_mode(),
            driver,
            "{key_value}"
        );
    }
}

#[test]
fn sslmode_defaults_to_prefer() {
    for url in ["postgres://app@db/biot", "host=db user=app"] {
        assert_eq!(
            settings(url).config.get_ssl_mode(),
            DriverSslMode::Prefer,
            "{url}"
        );
    }
}

#[test]
fn unknown_sslmodes_are_refused_by_name_in_both_forms() {
    for (value, shown) in [
        ("allow", "allow"),
        ("verify_full", "verify_full"),
        ("VERIFY-FULL", "VERIFY-FULL"),
        ("", ""),
        ("p@ss/word is here", "(not shown)"),
    ] {
        let encoded: String =
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        for url in [
            format!("postgres://app:hunter2@db/biot?sslmode={encoded}"),
            format!("host=db password=hunter2 sslmode='{value}'"),
        ] {
            let err = setup_error(&url, None);
            match &err {
                PostgresSetupError::InvalidSslMode { value } => assert_eq!(value, shown),
                other => panic!("{url}: {other:?}"),
            }
            let message = err.to_string();
            assert!(message.contains("verify-full"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}

#[test]
fn plan_follows_libpq() {
    let pem = Some(TEST_CA_PEM);
    let cases: [(TlsParameters, Option<&[u8]>, SslMode, RootSource<'_>); 8] = [
        (tls(None, None), None, SslMode::Prefer, RootSource::Absent),
        (
            tls(None, None),
            pem,
            SslMode::Prefer,
            RootSource::Given(TEST_CA_PEM),
        ),
        (
            tls(None, Some("/ca.pem")),
            None,
            SslMode::Prefer,
            RootSource::File("/ca.pem"),
        ),
        // System roots make verify-full the default.
        (
            tls(None, Some("system")),
            None,
            SslMode::VerifyFull,
            RootSource::System,
        ),
        (
            tls(Some("verify-full"), Some("system")),
            None,
            SslMode::VerifyFull,
            RootSource::System,
        ),
        (
            tls(Some("verify-ca"), None),
            None,
            SslMode::VerifyCa,
            RootSource::Absent,
        ),
        (
            tls(Some("require"), None),
            pem,
            SslMode::Require,
            RootSource::Given(TEST_CA_PEM),
        ),
        (
            tls(Some("disable"), Some("/x")),
            None,
            SslMode::Disable,
            RootSource::File("/x"),
        ),
    ];
    for (parameters, given, mode, source) in cases {
        assert_eq!(
            parameters.plan(given).unwrap(),
            (mode, source),
            "{parameters:?}"
        );
    }
}

#[test]
fn system_roots_with_a_weaker_mode_are_refused_as_libpq_does() {
    for mode in ["disable", "prefer", "require", "verify-ca"] {
        let err = setup_error(&format!("host=db sslmode={mode} sslrootcert=system"), None);
        assert!(
            matches!(err, PostgresSetupError::InvalidTlsSettings { .. }),
            "{mode}: {err:?}"
        );
    }
}

#[test]
fn roots_in_both_places_or_an_empty_sslrootcert_are_refused() {
    let err = setup_error(
        &format!("host=db sslrootcert={TEST_CA_PATH}"),
        Some(TEST_CA_PEM),
    );
    assert!(
        matches!(err, PostgresSetupError::InvalidTlsSettings { .. }),
        "{err:?}"
    );
    let err = setup_error("host=db sslrootcert=''", None);
    assert!(
        matches!(err, PostgresSetupError::InvalidTlsSettings { .. }),
        "{err:?}"
    );
}

#[test]
fn each_mode_checks_what_libpq_checks() {
    let file = RootSource::File(TEST_CA_PATH);
    let given = RootSource::Given(TEST_CA_PEM);
    let any = |mode: SslMode, source| {
        matches!(
            mode.verification(source).unwrap(),
            Verification::AnyCertificate
        )
    };
    let chain = |mode: SslMode, source| {
        matches!(mode.verification(source).unwrap(), Verification::Chain(_))
    };
    let full = |mode: SslMode, source| {
        matches!(
            mode.verification(source).unwrap(),
            Verification::ChainAndName(_)
        )
    };
    // disable never reads anything, even a file that is not there.
    assert!(any(SslMode::Disable, RootSource::File("/no/such/file.pem")));
    assert!(any(SslMode::Prefer, RootSource::Absent));
    assert!(any(SslMode::Require, RootSource::Absent));
    // With roots named, prefer and require check the chain, as libpq with a root file.
    for source in [file, given] {
        assert!(chain(SslMode::Prefer, source));
        assert!(chain(SslMode::Require, source));
        assert!(chain(SslMode::VerifyCa, source));
        assert!(full(SslMode::VerifyFull, source));
    }
}

// ---------------------------------------------------------------------------------
// Loading roots.

#[test]
fn pem_roots_take_every_certificate_and_refuse_none() {
    assert_eq!(pem_roots(TEST_CA_PEM).unwrap().len(), 1);
    let twice = [TEST_CA_PEM, b"\n", TEST_CA_PEM].concat();
    assert_eq!(pem_roots(&twice).unwrap().len(), 2);
    assert!(pem_roots(b"").is_err());
    assert!(pem_roots(b"not PEM at all").is_err());
    // A block that claims to be a certificate but is not DER.
    assert!(pem_roots(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
}

#[test]
fn root_file_problems_name_the_file_not_the_url() {
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/no-such-root.pem");
    let err = setup_error(
        &format!("postgres://app:hunter2@db/biot?sslmode=verify-full&sslrootcert={missing}"),
        None,
    );
    match &err {
        PostgresSetupError::TlsRootCertificates { origin, .. } => {
            assert!(origin.contains("no-such-root.pem"), "{origin}")
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.to_string().contains("hunter2"));

    // Not PEM: Cargo.toml.
    let not_pem = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let err = setup_error(
        &format!("host=db sslmode=verify-ca sslrootcert={not_pem}"),
        None,
    );
    assert!(
        matches!(err, PostgresSetupError::TlsRootCertificates { .. }),
        "{err:?}"
    );

    let err = setup_error("host=db sslmode=require", Some(b"nothing"));
    match &err {
        PostgresSetupError::TlsRootCertificates { origin, .. } => {
            assert!(origin.contains("tls_root_certificates"), "{origin}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn roots_given_in_code_are_used() {
    let settings =
        ConnectionSettings::from_url("host=db sslmode=verify-full", Some(TEST_CA_PEM)).unwrap();
    assert_eq!(settings.config.get_ssl_mode(), DriverSslMode::Require);
}

#[test]
fn connect_timeout_default_does_not_override_the_url() {
    let mut mine = settings("host=db connect_timeout=9");
    mine.default_connect_timeout(Duration::from_secs(1));
    assert_eq!(
        mine.config.get_connect_timeout(),
        Some(&Duration::from_secs(9))
    );
    let mut default = settings("host=db");
    default.default_connect_timeout(Duration::from_secs(1));
    assert_eq!(
        default.config.get_connect_timeout(),
        Some(&Duration::from_secs(1))
    );
}

// ---------------------------------------------------------------------------------
// A dedicated connection against a real server (tests/postgres_tls.rs covers the pool).

#[tokio::test]
#[ignore = "needs PostgreSQL with TLS: source .ci/postgres.sh"]
async fn a_dedicated_connection_receives_notifications_over_verified_tls() {
    use futures_util::future::poll_fn;
    use tokio_postgres::AsyncMessage;

    let needed = "`source .ci/postgres.sh` starts a PostgreSQL with TLS and exports both";
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| panic!("this test needs DATABASE_URL: {needed}"));
    let ca = std::env::var("BIOT_PG_TLS_CA")
        .unwrap_or_else(|_| panic!("this test needs BIOT_PG_TLS_CA: {needed}"));
    // DATABASE_URL names 127.0.0.1; the certificate is for `localhost`.
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        url.replacen("@127.0.0.1:", "@localhost:", 1),
        percent_encoding::utf8_percent_encode(&ca, percent_encoding::NON_ALPHANUMERIC)
    );
    let settings = ConnectionSettings::from_url(&url, None).expect("settings");
    let (listener, mut connection) = settings.connect().await.expect("a dedicated connection");
    let channel = format!("c_{}", uuid::Uuid::new_v4().simple());

    // The connection carries the client's requests and the notifications alike: a task
    // drives it and hands the notifications over.
    let (notifications, mut received) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(notification) = message.expect("the connection") {
                let _ = notifications.send(notification);
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN {channel}"))
        .await
        .expect("LISTEN");
    let ssl: bool = listener
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the dedicated connection is not TLS");
    listener
        .batch_execute(&format!("NOTIFY {channel}, 'over tls'"))
        .await
        .expect("NOTIFY");
    let notification = received.recv().await.expect("a notification");
    assert_eq!(notification.channel(), channel);
    assert_eq!(notification.payload(), "over tls");
    drop(listener);
    driver.await.expect("the connection ends cleanly");
}
