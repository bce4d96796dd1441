//! Upstream event handler calls: binary-mode CloudEvents over HTTP (`connect`, `connected`,
//! `disconnected`, user events and simple-client `message` events).

use crate::auth;
use crate::protocol::Payload;
use crate::session::Session;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time allowed for one handler call.
const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);

/// Who an event is about.
pub struct EventSource<'a> {
    pub hub: &'a str,
    pub connection_id: &'a str,
    pub user_id: Option<&'a str>,
    pub subprotocol: Option<&'a str>,
    pub connection_state: Option<String>,
}

impl<'a> EventSource<'a> {
    pub fn of(s: &'a Session) -> EventSource<'a> {
        EventSource {
            hub: &s.hub,
            connection_id: &s.id,
            user_id: s.user_id.as_deref(),
            subprotocol: s.subprotocol.as_deref(),
            connection_state: s
                .connection_state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// A handler's answer.
#[derive(Debug)]
pub struct HandlerResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub connection_state: Option<String>,
}

impl HandlerResponse {
    /// The body as a message payload (`None` when empty).
    pub fn payload(&self) -> Result<Option<Payload>, String> {
        if self.body.is_empty() {
            return Ok(None);
        }
        let ct = self
            .content_type
            .as_deref()
            .or(Some("application/octet-stream"));
        Payload::from_http(ct, self.body.clone()).map(Some)
    }
}

/// The upstream handler client.
pub struct Upstream {
    template: String,
    access_key: String,
    origin: String,
    client: Client<HttpConnector, Full<Bytes>>,
    next_id: AtomicU64,
    /// Hubs whose handler URL went through abuse-protection validation.
    validated: Mutex<HashSet<String>>,
}

impl Upstream {
    pub fn new(template: &str, access_key: &str, origin: &str) -> Upstream {
        Upstream {
            template: template.to_string(),
            access_key: access_key.to_string(),
            origin: origin.to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            next_id: AtomicU64::new(1),
            validated: Mutex::new(HashSet::new()),
        }
    }

    fn url(&self, hub: &str, event: &str) -> String {
        self.template
            .replace("{hub}", hub)
            .replace("{event}", event)
    }

    /// Abuse-protection validation (`OPTIONS`, once per hub). A handler that does not allow
    /// this origin only gets a warning: events are still delivered.
    async fn validate(&self, hub: &str) {
        if !self
            .validated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(hub.to_lowercase())
        {
            return;
        }
        let url = self.url(hub, "validate");
        let req = hyper::Request::builder()
            .method("OPTIONS")
            .uri(&url)
            .header("webhook-request-origin", &self.origin)
            .header("ce-awpsversion", "1.0")
            .body(Full::new(Bytes::new()));
        let Ok(req) = req else { return };
        let allowed = match tokio::time::timeout(HANDLER_TIMEOUT, self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => resp
                .headers()
                .get_all("webhook-allowed-origin")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|o| o.trim() == "*" || o.trim().eq_ignore_ascii_case(&self.origin)),
            _ => false,
        };
        if !allowed {
            log::warn!(
                "upstream handler {url} did not allow origin '{}' in abuse-protection validation; \
                 events are delivered anyway",
                self.origin
            );
        }
    }

    /// POSTs one CloudEvent and returns the handler's response (any status).
    pub async fn post(
        &self,
        src: &EventSource<'_>,
        ce_type: &str,
        event_name: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<HandlerResponse, String> {
        self.validate(src.hub).await;
        let url = self.url(src.hub, event_name);
        let signature = format!(
            "sha256={}",
            hex(&auth::hmac(&self.access_key, src.connection_id.as_bytes()))
        );
        let mut req = hyper::Request::post(&url)
            .header("content-type", content_type)
            .header("webhook-request-origin", &self.origin)
            .header("ce-specversion", "1.0")
            .header("ce-awpsversion", "1.0")
            .header("ce-type", ce_type)
            .header(
                "ce-source",
                format!("/hubs/{}/client/{}", src.hub, src.connection_id),
            )
            .header(
                "ce-id",
                self.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
            )
            .header("ce-time", rfc3339_now())
            .header("ce-signature", signature)
            .header("ce-connectionid", src.connection_id)
            .header("ce-hub", src.hub)
            .header("ce-eventname", event_name);
        if let Some(u) = src.user_id {
            req = req.header("ce-userid", header_value(u));
        }
        if let Some(p) = src.subprotocol {
            req = req.header("ce-subprotocol", p);
        }
        if let Some(st) = &src.connection_state {
            req = req.header("ce-connectionstate", header_value(st));
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("bad upstream request: {e}"))?;
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("upstream handler {url} unreachable: {e}"))?;
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            };
            let content_type = header("content-type");
            let connection_state = header("ce-connectionstate");
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("upstream handler {url} body: {e}"))?
                .to_bytes();
            Ok(HandlerResponse {
                status,
                content_type,
                body,
                connection_state,
            })
        };
        match tokio::time::timeout(HANDLER_TIMEOUT, call).await {
            Ok(r) => r,
            Err(_) => Err(format!("upstream handler {url} timed out")),
        }
    }

    /// The blocking `connect` event.
    pub async fn connect(
        &self,
        src: &EventSource<'_>,
        claims: &Map<String, Value>,
        query: &[(String, String)],
        headers: &[(String, String)],
        subprotocols: &[String],
    ) -> Result<HandlerResponse, String> {
        let to_multi = |pairs: &[(String, String)]| {
            let mut m: Map<String, Value> = Map::new();
            for (k, v) in pairs {
                let e = m.entry(k.clone()).or_insert_with(|| Value::Array(vec![]));
                if let Value::Array(a) = e {
                    a.push(Value::String(v.clone()));
                }
            }
            Value::Object(m)
        };
        let claims: Map<String, Value> = claims
            .iter()
            .map(|(k, v)| {
                let list = match v {
                    Value::Array(a) => a.iter().map(value_text).collect(),
                    other => vec![value_text(other)],
                };
                (k.clone(), Value::Array(list))
            })
            .collect();
        let body = serde_json::json!({
            "claims": claims,
            "query": to_multi(query),
            "headers": to_multi(headers),
            "subprotocols": subprotocols,
            "clientCertificates": [],
        });
        self.post(
            src,
            "azure.webpubsub.sys.connect",
            "connect",
            "application/json; charset=utf-8",
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// Fire-and-forget `connected` event.
    pub fn connected(self: &Arc<Self>, s: Arc<Session>) {
        let up = self.clone();
        // Sessions may end while the emulator is dropped outside its runtime: skip then.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let src = EventSource::of(&s);
            let r = up
                .post(
                    &src,
                    "azure.webpubsub.sys.connected",
                    "connected",
                    "application/json; charset=utf-8",
                    Bytes::from_static(b"{}"),
                )
                .await;
            log_outcome("connected", r);
        });
    }

    /// Fire-and-forget `disconnected` event.
    pub fn disconnected(self: &Arc<Self>, s: Arc<Session>, reason: String) {
        let up = self.clone();
        // Sessions may end while the emulator is dropped outside its runtime: skip then.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let src = EventSource::of(&s);
            let body = serde_json::json!({ "reason": reason }).to_string();
            let r = up
                .post(
                    &src,
                    "azure.webpubsub.sys.disconnected",
                    "disconnected",
                    "application/json; charset=utf-8",
                    Bytes::from(body),
                )
                .await;
            log_outcome("disconnected", r);
        });
    }

    /// A user event (`event` / `invoke` message, or simple-client `message`). `Ok(payload)`
    /// on 2xx; `Err(message)` otherwise.
    pub async fn user_event(
        &self,
        s: &Session,
        event: &str,
        data: &Payload,
    ) -> Result<Option<Payload>, String> {
        let src = EventSource::of(s);
        let r = self
            .post(
                &src,
                &format!("azure.webpubsub.user.{event}"),
                event,
                data.content_type(),
                data.raw_bytes(),
            )
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(format!("upstream handler returned HTTP {}", r.status));
        }
        if let Some(st) = &r.connection_state {
            *s.connection_state.lock().unwrap_or_else(|e| e.into_inner()) = Some(st.clone());
        }
        r.payload()
    }
}

/// A header value carrying arbitrary text: UTF-8 bytes are sent as is (obs-text), control
/// characters become `?`, so a user id like `José` does not fail the request.
fn header_value(s: &str) -> hyper::header::HeaderValue {
    let bytes: Vec<u8> = s
        .bytes()
        .map(|b| {
            if b < 0x20 && b != b'\t' || b == 0x7f {
                b'?'
            } else {
                b
            }
        })
        .collect();
    hyper::header::HeaderValue::from_bytes(&bytes)
        .unwrap_or_else(|_| hyper::header::HeaderValue::from_static(""))
}

fn value_text(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.clone()),
        other => Value::String(other.to_string()),
    }
}

fn log_outcome(event: &str, r: Result<HandlerResponse, String>) {
    match r {
        Ok(r) if (200..300).contains(&r.status) => {}
        Ok(r) => log::warn!("upstream {event} event: HTTP {}", r.status),
        Err(e) => log::warn!("upstream {event} event: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        tod / 3600,
        tod % 3600 / 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
