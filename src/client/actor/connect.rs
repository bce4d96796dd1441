//! Obtaining sockets: the client access URL (credential provider), TLS and proxy settings,
//! new connections, and recovery of a dropped reliable connection.

use std::sync::Arc;

use tokio::time::Instant;

use super::{Actor, Guarded};
use crate::client::transport::{self, Socket};
use crate::client::{provider_pool, url as client_url, ClientId, Credential};
use crate::error::Error;
use crate::protocol::Codec;
use crate::wps_log;

impl Actor {
    /// Gets a client access URL. A provider runs on the shared provider threads (see
    /// `provider_pool`): waiting for a thread takes at most `connect_timeout`, the call at
    /// most `url_provider_timeout`. Never two calls at once for one client: a call that timed
    /// out earlier is waited for first (at most `url_provider_timeout`).
    async fn fetch_url(&mut self) -> Guarded<Result<url::Url, Error>> {
        let f = match &self.credential {
            Credential::Url(u) => return Guarded::Done(client_url::validate(u)),
            Credential::Provider(f) => f.clone(),
        };
        let deadline = Instant::now() + self.options.url_provider_timeout;
        if let Some(mut late) = self.late_provider.take() {
            match self
                .guard(tokio::time::timeout_at(deadline, &mut late))
                .await
            {
                Guarded::Stopped => {
                    self.late_provider = Some(late);
                    return Guarded::Stopped;
                }
                // It returned (its answer is stale by now and dropped) or was dropped.
                Guarded::Done(Ok(_)) => {}
                Guarded::Done(Err(_)) => {
                    self.late_provider = Some(late);
                    return Guarded::Done(Err(Error::UrlProvider(format!(
                        "the previous URL provider call is still running after {} ms",
                        self.options.url_provider_timeout.as_millis()
                    ))));
                }
            }
        }
        let provider_pool::Submitted {
            mut started,
            result: mut rx,
        } = match provider_pool::submit(f) {
            Ok(call) => call,
            Err(e) => return Guarded::Done(Err(e)),
        };
        // Waiting for a free provider thread is bounded by the connect timeout; the
        // provider's own time starts when a thread takes the call.
        let queue_deadline = Instant::now() + self.options.connect_timeout;
        match self
            .guard(tokio::time::timeout_at(queue_deadline, &mut started))
            .await
        {
            Guarded::Stopped => {
                self.late_provider = Some(rx);
                return Guarded::Stopped;
            }
            Guarded::Done(Err(_)) => {
                // Dropping the receivers makes the queued call be skipped.
                return Guarded::Done(Err(Error::UrlProvider(format!(
                    "no URL provider thread became free within {} ms (all {} are busy)",
                    self.options.connect_timeout.as_millis(),
                    provider_pool::PROVIDER_THREADS
                ))));
            }
            Guarded::Done(Ok(_)) => {}
        }
        let deadline = Instant::now() + self.options.url_provider_timeout;
        let outcome = match self.guard(tokio::time::timeout_at(deadline, &mut rx)).await {
            Guarded::Stopped => {
                self.late_provider = Some(rx);
                return Guarded::Stopped;
            }
            Guarded::Done(Err(_)) => {
                wps_log!(
                    Warning,
                    "client {}: the URL provider did not return within {} ms",
                    self.id.0,
                    self.options.url_provider_timeout.as_millis()
                );
                self.late_provider = Some(rx);
                Err(Error::UrlProvider(format!(
                    "the URL provider did not return within {} ms",
                    self.options.url_provider_timeout.as_millis()
                )))
            }
            Guarded::Done(Ok(Ok(Ok(Ok(u))))) => client_url::validate(&u).map_err(|e| {
                Error::UrlProvider(format!("the URL provider returned an unusable URL: {e}"))
            }),
            Guarded::Done(Ok(Ok(Ok(Err(msg))))) => Err(Error::UrlProvider(format!(
                "the URL provider failed: {msg}"
            ))),
            Guarded::Done(Ok(Ok(Err(_)))) => {
                Err(Error::UrlProvider("the URL provider panicked".into()))
            }
            Guarded::Done(Ok(Err(_))) => Err(Error::UrlProvider(
                "the URL provider call was dropped".into(),
            )),
        };
        Guarded::Done(outcome)
    }

    /// The TLS configuration (roots, CA file, client certificate), built once per client.
    fn tls_config(&mut self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(tls) = &self.tls {
            return Ok(tls.clone());
        }
        let tls = transport::shared_tls_config(
            self.options.ca_file.as_deref(),
            self.options.client_cert.as_ref(),
        )?;
        self.tls = Some(tls.clone());
        Ok(tls)
    }

    fn tls_for(&mut self, url: &url::Url) -> Result<Option<Arc<rustls::ClientConfig>>, Error> {
        if url.scheme() != "wss" {
            return Ok(None);
        }
        self.tls_config().map(Some)
    }

    async fn connect(
        &mut self,
        url: &url::Url,
        deadline: Instant,
    ) -> Guarded<Result<Socket, Error>> {
        let tls = match self.tls_for(url) {
            Ok(t) => t,
            Err(e) => return Guarded::Done(Err(e)),
        };
        let proxy = match crate::client::proxy::for_url(url, self.options.proxy.as_deref()) {
            Ok(p) => p,
            Err(e) => return Guarded::Done(Err(e)),
        };
        let proxy_tls = match &proxy {
            Some(p) if p.kind == crate::client::proxy::ProxyKind::Https => {
                match self.tls_config() {
                    Ok(t) => Some(t),
                    Err(e) => return Guarded::Done(Err(e)),
                }
            }
            _ => None,
        };
        let user_agent = match transport::user_agent(self.options.user_agent.as_deref()) {
            Ok(ua) => ua,
            Err(e) => return Guarded::Done(Err(e)),
        };
        wps_log!(Info, "client {}: connecting to {}", self.id.0, url.as_str());
        // Boxed: the handshake's state is large and only lives while connecting, so it must
        // not make every (idle) engine task that large.
        let attempt = tokio::time::timeout_at(
            deadline,
            Box::pin(transport::connect(
                url,
                self.codec.subprotocol(),
                user_agent,
                transport::Limits {
                    max_message_size: self.options.max_inbound_message_size,
                    read_buffer_size: self.options.read_buffer_size,
                    write_buffer_size: self.options.write_buffer_size,
                },
                tls,
                proxy.as_ref(),
                proxy_tls,
            )),
        );
        match self.guard(attempt).await {
            Guarded::Stopped => Guarded::Stopped,
            Guarded::Done(Ok(r)) => Guarded::Done(r),
            Guarded::Done(Err(_)) => Guarded::Done(Err(Error::Timeout { ack_id: None })),
        }
    }

    /// Opens a brand-new connection (fresh URL from the credential).
    pub(super) async fn open_new(&mut self, deadline: Instant) -> Guarded<Result<Socket, Error>> {
        let url = match self.fetch_url().await {
            Guarded::Stopped => return Guarded::Stopped,
            Guarded::Done(Ok(u)) => u,
            Guarded::Done(Err(e)) => return Guarded::Done(Err(e)),
        };
        let r = self.connect(&url, deadline).await;
        if let Guarded::Done(Err(Error::HandshakeRejected { status: 401 })) = &r {
            explain_rejection(self.id, &url, &self.credential);
        }
        // Kept for recovery only when it came from the provider: a fixed URL is parsed again
        // then (one copy of a long URL less per client).
        self.url = matches!(self.credential, Credential::Provider(_)).then_some(url);
        r
    }

    /// The URL of the current connection, as recovery needs it.
    fn connection_url(&self) -> Option<url::Url> {
        match &self.credential {
            Credential::Url(u) => client_url::validate(u).ok(),
            Credential::Provider(_) => self.url.clone(),
        }
    }

    /// Tries the recovery URL until the episode's deadline, attempts `recovery_interval`
    /// apart (also when the previous attempt opened a socket that was lost before the
    /// service answered on it). Returns an open socket; the service confirms the session by
    /// answering on it (see `mark_usable`), or refuses it with 1008.
    pub(super) async fn recover(&mut self) -> Guarded<Option<Socket>> {
        let (Some(original), Some(conn), Some(token), Some(mut episode)) = (
            self.connection_url(),
            self.connection_id.clone(),
            self.reconnection_token.clone(),
            self.episode,
        ) else {
            return Guarded::Done(None);
        };
        let url = client_url::recovery_url(&original, &conn, &token);
        loop {
            let now = Instant::now();
            if now >= episode.deadline {
                return Guarded::Done(None);
            }
            if now < episode.next_attempt {
                let until = episode.next_attempt.min(episode.deadline);
                if let Guarded::Stopped = self.guard(tokio::time::sleep_until(until)).await {
                    return Guarded::Stopped;
                }
                continue;
            }
            episode.next_attempt = now + self.options.recovery_interval;
            self.episode = Some(episode);
            let attempt_deadline = episode.deadline.min(now + self.options.connect_timeout);
            match self.connect(&url, attempt_deadline).await {
                Guarded::Stopped => return Guarded::Stopped,
                Guarded::Done(Ok(socket)) => return Guarded::Done(Some(socket)),
                // The transport refuses the recovery URL itself (e.g. a reconnection token
                // too long for a request line): no later attempt can do better.
                Guarded::Done(Err(e @ (Error::InvalidUrl(_) | Error::InvalidArgument(_)))) => {
                    wps_log!(Warning, "client {}: recovery impossible: {}", self.id.0, e);
                    return Guarded::Done(None);
                }
                Guarded::Done(Err(e)) => {
                    wps_log!(Info, "client {}: recovery attempt failed: {}", self.id.0, e);
                }
            }
        }
    }
}

/// Logs why a 401 probably happened when the token's own expiry says so.
fn explain_rejection(id: ClientId, url: &url::Url, credential: &Credential) {
    let Some(exp) = client_url::token_expiry(url) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if exp <= now {
        let hint = match credential {
            Credential::Url(_) => "; a Credential::Provider gets a fresh URL for every connection",
            Credential::Provider(_) => "; the URL provider returned an expired URL",
        };
        wps_log!(
            Error,
            "client {}: the access token expired {} s ago{}",
            id.0,
            now - exp,
            hint
        );
    }
}
