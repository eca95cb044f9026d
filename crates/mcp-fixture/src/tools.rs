//! The tool catalog: every tool's definition (name, JSON Schemas, annotations) in the shape
//! each protocol revision expects, the `tool_k` / `extra_k` generated tools, lookup by name,
//! and `tools/list` pagination with opaque cursors. Behaviour lives in `run.rs`.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// What a tool does when called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Add,
    Slow,
    Hang,
    Crash,
    Garbage,
    Fail,
    RpcError,
    Progress,
    ChangeTools,
    Env,
    Headers,
    Mixed,
    Routed,
    Stats,
    /// `tool_k` from `--tools` and `extra_k` from change_tools: echo `text`.
    Numbered,
}

/// Tool parameters mirrored into `Mcp-Param-*` headers (modern Streamable HTTP).
pub type HeaderParams = &'static [(&'static str, &'static str)];

#[derive(Debug, Clone)]
pub struct ToolDef {
    pub name: String,
    pub kind: Kind,
    /// Listing JSON per revision tier (see [`tier`]).
    listing: [Value; 3],
    /// (argument name, header name suffix) pairs from `x-mcp-header`.
    pub header_params: HeaderParams,
}

/// Which shape of tool definition a revision understands: 0 = 2024-11-05 (no annotations),
/// 1 = 2025-03-26 (annotations), 2 = 2025-06-18 and newer (title, outputSchema).
pub fn tier(version: &str) -> usize {
    if version >= "2025-06-18" {
        2
    } else if version >= "2025-03-26" {
        1
    } else {
        0
    }
}

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
}

fn text_schema(field: &str, description: &str) -> Value {
    json!({
        "type": "object",
        "properties": {field: {"type": "string", "description": description}},
        "required": [field],
        "additionalProperties": false
    })
}

struct Spec {
    name: String,
    kind: Kind,
    title: &'static str,
    description: String,
    input: Value,
    output: Option<Value>,
    read_only: bool,
    header_params: HeaderParams,
}

fn build(s: Spec) -> ToolDef {
    let annotations = json!({"readOnlyHint": s.read_only, "openWorldHint": false});
    let mut base = json!({"name": s.name, "description": s.description, "inputSchema": s.input});
    let t0 = base.clone();
    if let Some(o) = base.as_object_mut() {
        o.insert("annotations".into(), annotations);
    }
    let t1 = base.clone();
    if let Some(o) = base.as_object_mut() {
        o.insert("title".into(), Value::from(s.title));
        if let Some(out) = s.output {
            o.insert("outputSchema".into(), out);
        }
    }
    ToolDef {
        name: s.name,
        kind: s.kind,
        listing: [t0, t1, base],
        header_params: s.header_params,
    }
}

fn spec(name: &str, kind: Kind, title: &'static str, description: &str, input: Value) -> Spec {
    Spec {
        name: name.to_owned(),
        kind,
        title,
        description: description.to_owned(),
        input,
        output: None,
        read_only: true,
        header_params: &[],
    }
}

fn named_tools(stdio: bool) -> Vec<ToolDef> {
    let mut v = vec![
        spec("echo", Kind::Echo, "Echo", "Returns `text` as text content.", text_schema("text", "Text to echo back")),
        Spec {
            output: Some(json!({
                "type": "object",
                "properties": {"sum": {"type": "number"}},
                "required": ["sum"]
            })),
            ..spec(
                "add",
                Kind::Add,
                "Add",
                "Adds two numbers; returns text and structuredContent {sum}.",
                json!({
                    "type": "object",
                    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                    "required": ["a", "b"],
                    "additionalProperties": false
                }),
            )
        },
        spec(
            "slow",
            Kind::Slow,
            "Slow",
            "Sleeps `ms` milliseconds, then returns \"slept <ms>\".",
            json!({
                "type": "object",
                "properties": {"ms": {"type": "integer", "minimum": 0}},
                "required": ["ms"],
                "additionalProperties": false
            }),
        ),
        spec("hang", Kind::Hang, "Hang", "Never answers (until cancelled).", empty_schema()),
        spec("crash", Kind::Crash, "Crash", "Kills the transport without answering (stdio: exit 3).", empty_schema()),
        spec("garbage", Kind::Garbage, "Garbage", "Sends a non-JSON message, then (stdio/WS/SSE) the answer \"ok\".", empty_schema()),
        spec("fail", Kind::Fail, "Fail", "Returns a tool error (isError: true, \"it failed\").", empty_schema()),
        spec("rpc_error", Kind::RpcError, "RPC error", "Answers with JSON-RPC error -32603 \"internal failure\".", empty_schema()),
        spec(
            "progress",
            Kind::Progress,
            "Progress",
            "Sends `steps` notifications/progress (if a progressToken was given), then \"done\".",
            json!({
                "type": "object",
                "properties": {
                    "steps": {"type": "integer", "minimum": 0},
                    "delay_ms": {"type": "integer", "minimum": 0, "description": "Pause between steps"}
                },
                "required": ["steps"],
                "additionalProperties": false
            }),
        ),
        Spec {
            read_only: false,
            ..spec("change_tools", Kind::ChangeTools, "Change tools", "Adds a tool extra_<k> and announces notifications/tools/list_changed.", empty_schema())
        },
        spec("env", Kind::Env, "Environment", "Returns the value of environment variable `name` (\"\" if unset).", text_schema("name", "Variable name")),
        spec("headers", Kind::Headers, "Headers", "Returns the HTTP headers of this request as JSON text.", empty_schema()),
        spec("mixed", Kind::Mixed, "Mixed content", "Returns text, image and embedded-resource content plus _meta and an unknown field.", empty_schema()),
        Spec {
            header_params: &[("region", "Region")],
            ..spec(
                "routed",
                Kind::Routed,
                "Routed",
                "Returns \"region=<region>\"; `region` is mirrored in the Mcp-Param-Region header (x-mcp-header).",
                json!({
                    "type": "object",
                    "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                    "required": ["region"],
                    "additionalProperties": false
                }),
            )
        },
    ];
    if stdio {
        v.push(spec(
            "stats",
            Kind::Stats,
            "Stats",
            "Returns the fixture's counters (same JSON as GET /stats).",
            empty_schema(),
        ));
    }
    v.into_iter().map(build).collect()
}

fn numbered(name: String) -> ToolDef {
    let description = format!("Generated tool {name}: echoes `text`.");
    build(Spec {
        name,
        kind: Kind::Numbered,
        title: "Generated",
        description,
        input: text_schema("text", "Text to echo back"),
        output: None,
        read_only: true,
        header_params: &[],
    })
}

/// An immutable view of the tool list.
pub struct Snapshot {
    tools: Vec<ToolDef>,
    index: HashMap<String, usize>,
    extras: usize,
}

impl Snapshot {
    fn new(tools: Vec<ToolDef>, extras: usize) -> Self {
        let index = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Self {
            tools,
            index,
            extras,
        }
    }

    pub fn get(&self, name: &str) -> Option<&ToolDef> {
        self.index.get(name).and_then(|i| self.tools.get(*i))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// One page of listings starting at `offset`; `page_size` 0 = everything. Returns the
    /// tools and the offset of the next page, if any.
    pub fn page(
        &self,
        tier: usize,
        offset: usize,
        page_size: usize,
    ) -> (Vec<Value>, Option<usize>) {
        let end = if page_size == 0 {
            self.tools.len()
        } else {
            offset.saturating_add(page_size).min(self.tools.len())
        };
        let slice = self.tools.get(offset..end).unwrap_or(&[]);
        let page = slice
            .iter()
            .map(|t| t.listing.get(tier).cloned().unwrap_or(Value::Null))
            .collect();
        (page, (end < self.tools.len()).then_some(end))
    }
}

/// The mutable catalog: snapshots are swapped on change, readers never wait on writers
/// for longer than an `Arc` clone.
pub struct Catalog {
    current: RwLock<Arc<Snapshot>>,
}

impl Catalog {
    pub fn new(numbered_tools: usize, stdio: bool) -> Self {
        let mut tools = named_tools(stdio);
        tools.extend((0..numbered_tools).map(|k| numbered(format!("tool_{k}"))));
        Self {
            current: RwLock::new(Arc::new(Snapshot::new(tools, 0))),
        }
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds `extra_<k>` and returns its name.
    pub fn add_extra(&self) -> String {
        let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let k = cur.extras;
        let name = format!("extra_{k}");
        let mut tools = cur.tools.clone();
        tools.push(numbered(name.clone()));
        *cur = Arc::new(Snapshot::new(tools, k + 1));
        name
    }
}

const CURSOR_PREFIX: &str = "fixture-tools:";

/// An opaque cursor for the page starting at `offset`.
pub fn encode_cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{offset}"))
}

/// The offset encoded in a cursor from [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let s = std::str::from_utf8(&raw).ok()?;
    s.strip_prefix(CURSOR_PREFIX)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_and_cursor() {
        let c = Catalog::new(5, false);
        let snap = c.snapshot();
        assert_eq!(snap.len(), 19);
        let (page, next) = snap.page(2, 0, 10);
        assert_eq!(page.len(), 10);
        assert_eq!(next, Some(10));
        let (page, next) = snap.page(2, 10, 10);
        assert_eq!(page.len(), 9);
        assert_eq!(next, None);
        assert_eq!(decode_cursor(&encode_cursor(10)), Some(10));
        assert_eq!(decode_cursor("bogus"), None);
        assert!(snap.get("tool_4").is_some());
        assert_eq!(c.add_extra(), "extra_0");
        assert!(c.snapshot().get("extra_0").is_some());
    }

    #[test]
    fn tiers_strip_fields() {
        let snap = Catalog::new(0, false).snapshot();
        let (page, _) = snap.page(0, 1, 1);
        assert!(page[0].get("outputSchema").is_none());
        assert!(page[0].get("annotations").is_none());
        let (page, _) = snap.page(2, 1, 1);
        assert!(page[0].get("outputSchema").is_some());
    }
}
