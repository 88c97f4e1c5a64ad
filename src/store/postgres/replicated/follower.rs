//! The follower: one task per store that holds the listening connection, applies the
//! changes it is told of, reads the counter at each heartbeat, and reconnects and
//! catches up when the connection is lost.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::tokio_postgres::{
    self, AsyncMessage, Client, Connection, Socket, Statement,
};
use tokio::sync::mpsc;

use super::super::connection::{ConnectionSettings, TlsStream};
use super::super::quote_identifier;
use super::super::rows::store_error;
use super::{Replica, FIRST_RECONNECT_DELAY};
use crate::store::StoreError;
use crate::wire_error::{BoxError, ErrorChain};

/// Notifications waiting for the follower; more are dropped, which loses nothing: the
/// follower reads every change after its version whenever it is told of any.
const NOTIFICATIONS_BUFFERED: usize = 1_024;

/// How the listening connection is made: with the pool's settings (URL, TLS, timeouts)
/// and an `application_name` of its own unless the URL sets one, so that an operator
/// can tell it from the pool's connections.
pub(super) struct Listener {
    settings: ConnectionSettings,
}

impl Listener {
    pub(super) fn new(mut settings: ConnectionSettings) -> Self {
        settings.default_application_name("biot-notifications-listener");
        Listener { settings }
    }

    async fn connect(
        &self,
    ) -> Result<(Client, Connection<Socket, TlsStream>), tokio_postgres::Error> {
        self.settings.connect().await
    }
}

/// What the listening connection tells the follower.
enum Heard {
    /// A change of this version (or, when the payload is not a number, some change).
    Notified(u64),
    /// The connection is closed or broken.
    Closed(BoxError),
}

/// A listening connection that has caught up.
pub(super) struct Session {
    client: Client,
    heard: mpsc::Receiver<Heard>,
    changes_from: Statement,
}

impl Replica {
    /// Connects, `LISTEN`s, then brings the index up to the database (the first time by
    /// loading it whole): listening first, so no change falls between.
    pub(super) async fn open_session(&self) -> Result<Session, StoreError> {
        let (mut client, heard, changes_from) = self.postgres.within(self.listen()).await?;
        {
            let mut applied = self.applying.lock().await;
            if self.status.snapshot().full_reloads == 0 {
                self.reload(&mut applied, &mut client).await?;
            } else {
                self.bring_up_to_date(&mut applied, &mut client, &changes_from)
                    .await?;
            }
        }
        Ok(Session {
            client,
            heard,
            changes_from,
        })
    }

    /// The listening connection, `LISTEN`ing, with its statement prepared.
    async fn listen(&self) -> Result<(Client, mpsc::Receiver<Heard>, Statement), StoreError> {
        let (client, connection) = self.listener.connect().await.map_err(store_error)?;
        let (tell, heard) = mpsc::channel(NOTIFICATIONS_BUFFERED);
        tokio::spawn(drive(connection, tell));
        client
            .batch_execute(&format!(
                "LISTEN {}",
                quote_identifier(self.postgres.schema())
            ))
            .await
            .map_err(store_error)?;
        let changes_from = client
            .prepare(self.sql.changes_from())
            .await
            .map_err(store_error)?;
        Ok((client, heard, changes_from))
    }

    /// Follows the database for as long as the store lives (the store aborts this task
    /// when its last handle is dropped).
    pub(super) async fn follow(self: Arc<Self>, mut session: Session) {
        let schema = self.postgres.schema().to_owned();
        let first_delay = FIRST_RECONNECT_DELAY.min(self.max_reconnect_delay);
        let mut delay = first_delay;
        loop {
            let opened = Instant::now();
            let lost = self.run(&mut session).await;
            self.status.lost(&schema, &lost);
            drop(session);
            // A session that lived starts the waits over; one that failed soon after it
            // opened (a database that accepts connections, then drops them) keeps them
            // growing.
            if opened.elapsed() > self.max_reconnect_delay {
                delay = first_delay;
            }
            session = loop {
                tokio::time::sleep(delay).await;
                let opened = self.open_session().await;
                delay = delay.saturating_mul(2).min(self.max_reconnect_delay);
                match opened {
                    Ok(session) => break session,
                    // Said once the waits are at their longest: an outage, not a blip.
                    Err(error) if delay >= self.max_reconnect_delay => tracing::warn!(
                        schema,
                        error = %ErrorChain(&error),
                        retry_in_ms = delay.as_millis() as u64,
                        "the replicated store still cannot reconnect to the database"
                    ),
                    Err(error) => tracing::debug!(
                        schema,
                        error = %ErrorChain(&error),
                        retry_in_ms = delay.as_millis() as u64,
                        "the replicated store could not reconnect yet"
                    ),
                }
            };
            self.status.count_reconnect();
            self.status.following(&schema);
        }
    }

    /// Applies what the session hears about, and reads the counter at each heartbeat,
    /// until the connection fails; returns why.
    async fn run(&self, session: &mut Session) -> BoxError {
        loop {
            match tokio::time::timeout(self.heartbeat, session.heard.recv()).await {
                Ok(Some(Heard::Notified(mut newest))) => {
                    // Everything already heard of is caught up with at once.
                    while let Ok(heard) = session.heard.try_recv() {
                        match heard {
                            Heard::Notified(version) => newest = newest.max(version),
                            Heard::Closed(why) => return why,
                        }
                    }
                    if newest <= self.status.version() {
                        continue; // Our own writes, already applied.
                    }
                }
                Ok(Some(Heard::Closed(why))) => return why,
                Ok(None) => return "the listening connection's driver stopped".into(),
                // The heartbeat: reading the counter also proves the connection lives.
                Err(_) => {}
            }
            let mut applied = self.applying.lock().await;
            let caught_up = self
                .bring_up_to_date(&mut applied, &mut session.client, &session.changes_from)
                .await;
            if let Err(error) = caught_up {
                return error.into();
            }
        }
    }
}

/// Drives the listening connection, passing on its notifications, until it ends.
async fn drive(mut connection: Connection<Socket, TlsStream>, tell: mpsc::Sender<Heard>) {
    let closed = loop {
        match poll_fn(|cx| connection.poll_message(cx)).await {
            Some(Ok(AsyncMessage::Notification(notification))) => {
                let version = notification.payload().parse().unwrap_or(u64::MAX);
                // Full: the follower will read every change anyway.
                let _ = tell.try_send(Heard::Notified(version));
            }
            Some(Ok(_notice)) => {}
            Some(Err(error)) => break error.into(),
            None => break "the database closed the listening connection".into(),
        }
    };
    // Waits for room: the follower must learn that the connection is gone.
    let _ = tell.send(Heard::Closed(closed)).await;
}
