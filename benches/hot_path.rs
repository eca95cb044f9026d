//! Micro-benchmarks of the gateway's per-request work that does not touch the network:
//! name routing, the permission decision, argument validation, JSON-RPC parsing, and
//! two costs the end-to-end benchmarks pointed at (digest hex formatting in API-key
//! lookup; converting a cached tool into a JSON value for `tools/list`).
//!
//! `cargo bench --bench hot_path` (criterion; `-- --quick` for a short run). The
//! end-to-end figures are `scripts/bench.sh`'s; see docs/benchmarks.md.

// `criterion_group!` defines an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use litellm_rs::core::mcp::permissions::KeyDigest;
use litellm_rs::core::mcp::protocol::Incoming;
use litellm_rs::core::mcp::tools::ArgumentValidator;
use litellm_rs::core::mcp::{
    Caller, McpGateway, PermissionLevel, PermissionManager, PermissionPolicy, PermissionRule,
    PropertySchema, Tool, ToolInputSchema,
};
use serde_json::{json, Value};

fn routing(c: &mut Criterion) {
    let gateway = McpGateway::new();
    c.bench_function("routing/split_qualified_name", |b| {
        b.iter(|| gateway.split_qualified_name(black_box("github__create_issue")))
    });
    c.bench_function("routing/split_qualified_name_miss", |b| {
        b.iter(|| gateway.split_qualified_name(black_box("create-issue-without-server")))
    });
}

/// 100 rules, the one that matches near the end, as the key's policy; a team and an
/// organisation policy bound it.
fn permission_manager() -> PermissionManager {
    let mut rules: Vec<PermissionRule> = (0..99)
        .map(|i| {
            let level = if i % 3 == 0 {
                PermissionLevel::Deny
            } else {
                PermissionLevel::Read
            };
            PermissionRule::new(format!("server{i}"), format!("tool_{i}_*"), level)
        })
        .collect();
    rules.push(PermissionRule::new(
        "github",
        "create_*",
        PermissionLevel::Execute,
    ));
    let mut manager = PermissionManager::new();
    manager.set_default_level(PermissionLevel::Deny);
    manager.set_key_policy(
        "sk-bench-key",
        PermissionPolicy {
            name: "key".into(),
            default_level: PermissionLevel::Read,
            rules,
        },
    );
    manager.set_team_policy(
        "platform",
        PermissionPolicy {
            name: "team".into(),
            default_level: PermissionLevel::Execute,
            rules: vec![PermissionRule::new("*", "delete_*", PermissionLevel::Deny)],
        },
    );
    manager.set_organization_policy(
        "acme",
        PermissionPolicy {
            name: "org".into(),
            default_level: PermissionLevel::Admin,
            rules: Vec::new(),
        },
    );
    manager
}

fn permissions(c: &mut Criterion) {
    let manager = permission_manager();
    let caller = Caller::key("sk-bench-key")
        .in_team("platform")
        .in_organization("acme");
    assert_eq!(
        manager.resolve(&caller, "github", "create_issue"),
        PermissionLevel::Execute
    );
    c.bench_function("permissions/resolve_100_rules", |b| {
        b.iter(|| {
            manager.resolve(
                black_box(&caller),
                black_box("github"),
                black_box("create_issue"),
            )
        })
    });
    let digest = KeyDigest::of("sk-bench-key");
    c.bench_function("permissions/resolve_digest_100_rules", |b| {
        b.iter(|| {
            manager.resolve_digest(
                Some(black_box(&digest)),
                black_box(&caller),
                black_box("github"),
                black_box("create_issue"),
            )
        })
    });
    // What `tools/list` does per server: the view once, then one decision per tool.
    let view = manager.for_server(Some(&digest), &caller, "github");
    assert_eq!(view.level("create_issue"), PermissionLevel::Execute);
    c.bench_function("permissions/server_view_100_rules", |b| {
        b.iter(|| manager.for_server(Some(black_box(&digest)), black_box(&caller), "github"))
    });
    c.bench_function("permissions/server_view_level", |b| {
        b.iter(|| view.level(black_box("create_issue")))
    });
}

fn weather_tool() -> Tool {
    Tool::new("get_weather", "The weather in a city").with_input_schema(
        ToolInputSchema::new()
            .with_property("city", PropertySchema::string("The city"))
            .with_property(
                "units",
                PropertySchema::enumeration("Units", ["metric", "imperial"]),
            )
            .with_property("days", PropertySchema::integer("Days ahead"))
            .with_property(
                "fields",
                PropertySchema::array("Fields", PropertySchema::string("A field")),
            )
            .with_required(vec!["city".into()]),
    )
}

fn validation(c: &mut Criterion) {
    let validator = ArgumentValidator::compile(&weather_tool());
    let valid = json!({"city": "Paris", "units": "metric", "days": 3, "fields": ["temp", "wind"]});
    let invalid = json!({"units": "kelvin", "days": "three"});
    assert!(validator.validate(&valid).is_ok());
    assert!(validator.validate(&invalid).is_err());
    c.bench_function("validation/valid_arguments", |b| {
        b.iter(|| validator.validate(black_box(&valid)))
    });
    c.bench_function("validation/invalid_arguments", |b| {
        b.iter(|| validator.validate(black_box(&invalid)))
    });
    let echo = Tool::new("echo", "Echoes").with_input_schema(
        ToolInputSchema::new()
            .with_property("text", PropertySchema::string("Text"))
            .with_required(vec!["text".into()]),
    );
    let echo_validator = ArgumentValidator::compile(&echo);
    let text = json!({"text": "x".repeat(1024)});
    c.bench_function("validation/echo_1kib", |b| {
        b.iter(|| echo_validator.validate(black_box(&text)))
    });
    c.bench_function("validation/compile", |b| {
        let tool = weather_tool();
        b.iter(|| ArgumentValidator::compile(black_box(&tool)))
    });
}

fn jsonrpc(c: &mut Criterion) {
    let call = json!({
        "jsonrpc": "2.0", "id": 17,
        "result": {"content": [{"type": "text", "text": "x".repeat(1024)}], "isError": false},
    })
    .to_string();
    let tools: Vec<Value> = (0..67)
        .map(|i| {
            serde_json::to_value(
                Tool::new(format!("tool_{i}"), "Echoes text").with_input_schema(
                    ToolInputSchema::new()
                        .with_property("text", PropertySchema::string("Text"))
                        .with_required(vec!["text".into()]),
                ),
            )
            .unwrap_or_default()
        })
        .collect();
    let list = json!({"jsonrpc": "2.0", "id": 18, "result": {"tools": tools}}).to_string();
    let request = json!({
        "jsonrpc": "2.0", "id": 19, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x".repeat(1024)}},
    })
    .to_string();
    c.bench_function("jsonrpc/parse_call_response_1kib", |b| {
        b.iter(|| Incoming::parse_all(black_box(call.as_bytes())))
    });
    c.bench_function("jsonrpc/parse_call_request_1kib", |b| {
        b.iter(|| Incoming::parse_all(black_box(request.as_bytes())))
    });
    c.bench_function(
        &format!("jsonrpc/parse_tools_list_67_tools_{}b", list.len()),
        |b| b.iter(|| Incoming::parse_all(black_box(list.as_bytes()))),
    );
}

fn found_costs(c: &mut Criterion) {
    let digest = KeyDigest::of("sk-bench-key");
    c.bench_function("identity/key_digest_of", |b| {
        b.iter(|| KeyDigest::of(black_box("sk-bench-key")))
    });
    c.bench_function("identity/key_digest_to_hex", |b| {
        b.iter(|| black_box(&digest).to_hex())
    });
    let tool = weather_tool();
    c.bench_function("tools_list/tool_to_value", |b| {
        b.iter(|| serde_json::to_value(black_box(&tool)))
    });
}

criterion_group!(
    benches,
    routing,
    permissions,
    validation,
    jsonrpc,
    found_costs
);
criterion_main!(benches);
