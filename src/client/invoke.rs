//! `invoke` / `invokeResponse` correlation.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::error::Error;
use crate::protocol::{AckError, Payload};

/// The result of one invocation.
pub type InvokeResult = Result<Payload, Error>;

/// invocationId -> waiter.
#[derive(Default)]
pub struct InvokeTracker {
    pending: HashMap<String, oneshot::Sender<InvokeResult>>,
}

impl InvokeTracker {
    /// Registers a waiter.
    pub fn insert(&mut self, id: String, tx: oneshot::Sender<InvokeResult>) {
        self.pending.retain(|_, tx| !tx.is_closed());
        self.pending.insert(id, tx);
    }

    /// Resolves an `invokeResponse`.
    pub fn settle(
        &mut self,
        id: &str,
        success: bool,
        payload: Option<Payload>,
        error: Option<AckError>,
    ) {
        let Some(tx) = self.pending.remove(id) else {
            return;
        };
        let result = if success {
            Ok(payload.unwrap_or(Payload {
                data_type: crate::protocol::DataType::Text,
                data: Vec::new(),
            }))
        } else {
            let e = error.unwrap_or(AckError {
                name: "Unknown".into(),
                message: "invocation failed".into(),
            });
            Err(Error::Ack {
                ack_id: 0,
                name: e.name,
                message: e.message,
            })
        };
        let _ = tx.send(result);
    }

    /// Fails every pending invocation.
    pub fn fail_all(&mut self, error: &Error) {
        for (_, tx) in self.pending.drain() {
            let _ = tx.send(Err(error.clone()));
        }
    }
}
