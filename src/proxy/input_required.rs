//! Bridging an upstream's requests during a call to clients of the stateless revision
//! (2026-07-28), which take no requests from servers: the call runs on in the
//! background, the client gets an `input_required` result naming what is asked (with an
//! opaque `requestState`), and its retry — the same call with `inputResponses` and that
//! `requestState` — hands the answers to the waiting upstream and waits for the next
//! question or the result.
//!
//! Owns the table of calls waiting for input. A waiting call belongs to the key that
//! made it (another key's `requestState` is unknown), and is dropped, cancelling it
//! upstream, when nobody resumes it within [`WAIT_FOR_RETRY`]. The timer of a parked
//! call is a tracked task that ends as soon as the call is resumed (or dropped), so the
//! service's task count says how many calls are parked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

use super::handler::{ClientError, Outcome};
use crate::core::mcp::permissions::KeyDigest;
use crate::core::mcp::protocol::{RpcError, INVALID_PARAMS};
use crate::core::mcp::ServerRequest;

/// How long a call waits for the client's retry before it is given up.
pub const WAIT_FOR_RETRY: Duration = Duration::from_secs(300);

/// Prefix of the gateway's `requestState` values.
const STATE_PREFIX: &str = "gw-input-";

/// A call waiting for its client's answers.
struct Waiting {
    owner: Option<KeyDigest>,
    /// The upstream's questions as they come, and the call's outcome at the end.
    questions: mpsc::UnboundedReceiver<ServerRequest>,
    outcome: oneshot::Receiver<Outcome>,
    /// Replies owed to the upstream, by the key the client answers under.
    owed: HashMap<String, oneshot::Sender<Result<Value, RpcError>>>,
    /// Ends the parked call's timer when the call leaves the table (resumed or dropped).
    _timer: Option<DropGuard>,
}

/// The calls waiting for input.
#[derive(Clone, Default)]
pub struct WaitingCalls {
    calls: Arc<Mutex<HashMap<String, Waiting>>>,
    /// The timers of the parked calls.
    timers: TaskTracker,
}

impl std::fmt::Debug for WaitingCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.calls.lock().map(|c| c.len()).unwrap_or(0);
        f.debug_struct("WaitingCalls").field("waiting", &n).finish()
    }
}

impl WaitingCalls {
    /// Whether a request is the retry of a call waiting here.
    pub fn is_retry(params: &Value) -> bool {
        params
            .get("requestState")
            .and_then(Value::as_str)
            .is_some_and(|s| s.starts_with(STATE_PREFIX))
    }

    /// Starts tracking a call: `questions` carries the upstream's requests, `outcome`
    /// the call's result. Waits for the first of them.
    pub async fn begin(
        &self,
        owner: Option<KeyDigest>,
        questions: mpsc::UnboundedReceiver<ServerRequest>,
        outcome: oneshot::Receiver<Outcome>,
    ) -> Outcome {
        let waiting = Waiting {
            owner,
            questions,
            outcome,
            owed: HashMap::new(),
            _timer: None,
        };
        self.advance(waiting).await
    }

    /// Resumes a call with the client's `inputResponses`.
    pub async fn resume(&self, owner: Option<&KeyDigest>, params: &Value) -> Outcome {
        let unknown = || ClientError {
            code: INVALID_PARAMS,
            message: "Unknown or expired requestState".to_string(),
            data: None,
        };
        let state = params
            .get("requestState")
            .and_then(Value::as_str)
            .ok_or_else(unknown)?
            .to_string();
        let mut waiting = {
            let mut calls = self.calls.lock().map_err(|_| unknown())?;
            match calls.get(&state) {
                Some(w) if w.owner.as_ref() == owner => calls.remove(&state).ok_or_else(unknown)?,
                _ => return Err(unknown()),
            }
        };
        let answers = params
            .get("inputResponses")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (key, answer) in answers {
            if let Some(reply) = waiting.owed.remove(&key) {
                let _ = reply.send(Ok(answer));
            }
        }
        // Questions left unanswered are refused, so the upstream does not wait forever.
        for (_, reply) in waiting.owed.drain() {
            let _ = reply.send(Err(RpcError {
                code: INVALID_PARAMS,
                message: "the client gave no answer".to_string(),
                data: None,
            }));
        }
        self.advance(waiting).await
    }

    /// Waits for the call's next questions (→ an `input_required` result, the call kept
    /// under a new `requestState`) or its outcome.
    async fn advance(&self, mut waiting: Waiting) -> Outcome {
        tokio::select! {
            biased;
            Some(first) = waiting.questions.recv() => {
                let mut asked = vec![first];
                while let Ok(more) = waiting.questions.try_recv() {
                    asked.push(more);
                }
                let mut requests = Map::new();
                for (n, question) in asked.into_iter().enumerate() {
                    let key = format!("q{n}");
                    requests.insert(key.clone(), json!({"method": question.method, "params": question.params}));
                    waiting.owed.insert(key, question.reply);
                }
                let state = new_state();
                self.park(state.clone(), waiting);
                Ok(json!({"resultType": "input_required", "inputRequests": requests, "requestState": state}))
            }
            outcome = &mut waiting.outcome => outcome.unwrap_or_else(|_| Err(ClientError {
                code: crate::core::mcp::protocol::INTERNAL_ERROR,
                message: "the call ended without an outcome".to_string(),
                data: None,
            })),
        }
    }

    /// Keeps a call until its retry, and forgets it (cancelling it) after the wait.
    fn park(&self, state: String, mut waiting: Waiting) {
        let resumed = CancellationToken::new();
        waiting._timer = Some(resumed.clone().drop_guard());
        if let Ok(mut calls) = self.calls.lock() {
            calls.insert(state.clone(), waiting);
        }
        let calls = self.calls.clone();
        self.timers.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(WAIT_FOR_RETRY) => {
                    // Dropped outside the lock: dropping a call cancels it upstream.
                    let expired = calls.lock().ok().and_then(|mut calls| calls.remove(&state));
                    drop(expired);
                }
                () = resumed.cancelled() => {}
            }
        });
    }

    /// Calls parked, waiting for their client's retry (each with its timer task).
    pub fn parked(&self) -> usize {
        self.timers.len()
    }
}

fn new_state() -> String {
    format!("{STATE_PREFIX}{:032x}", rand::random::<u128>())
}
