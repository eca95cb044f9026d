//! Property tests of the parsers that take input from outside: the JSON-RPC envelope
//! parser (every face and every upstream message goes through it) and the settings
//! loader (a file someone wrote). Arbitrary input — random bytes, random JSON trees,
//! deep nesting, random YAML documents built from the format's own keys — must give a
//! value or an error, never a panic, and errors must say where.
//!
//! `PROPTEST_CASES` sets the number of cases (proptest's default, 256, in CI).

#![allow(clippy::unwrap_used)]

use litellm_rs::core::mcp::protocol::Incoming;
use litellm_rs::settings::{Settings, SettingsError};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON values, a few levels deep, biased toward JSON-RPC's own keys.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z/_]{0,12}".prop_map(Value::from),
        Just(json!("2.0")),
        Just(json!("tools/call")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("jsonrpc".to_string()),
                        Just("id".to_string()),
                        Just("method".to_string()),
                        Just("params".to_string()),
                        Just("result".to_string()),
                        Just("error".to_string()),
                        Just("code".to_string()),
                        Just("message".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn the_envelope_parser_takes_any_json_value(value in json_value()) {
        let _ = Incoming::from_value(value.clone());
        let _ = Incoming::parse_all(value.to_string().as_bytes());
        let _ = Incoming::parse_all(json!([value]).to_string().as_bytes());
    }

    #[test]
    fn the_envelope_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Incoming::parse_all(&bytes);
        let _ = Incoming::parse_from_client(&bytes);
    }

    #[test]
    fn the_strict_client_parser_takes_any_json_and_refuses_with_a_jsonrpc_error(value in json_value()) {
        let text = value.to_string();
        let strict = Incoming::parse_from_client(text.as_bytes());
        let _ = Incoming::from_client_value(value);
        if let Err(refusal) = strict {
            // Whatever was refused is answered with a JSON-RPC error object.
            let answer = refusal.to_response();
            prop_assert_eq!(&answer["jsonrpc"], "2.0");
            prop_assert!(answer["error"]["code"].as_i64().is_some(), "{}", answer);
        }
    }

    #[test]
    fn ids_of_any_size_come_back_exactly(digits in "-?[1-9][0-9]{0,40}") {
        let text = format!(r#"{{"jsonrpc":"2.0","id":{digits},"method":"ping"}}"#);
        let Incoming::Request { id, .. } = Incoming::parse_from_client(text.as_bytes()).unwrap() else {
            panic!("a request")
        };
        let answer = litellm_rs::core::mcp::protocol::encode(&json!({"jsonrpc": "2.0", "id": id, "result": {}}));
        prop_assert!(answer.contains(&format!(r#""id":{digits}"#)), "{}", answer);
    }

    #[test]
    fn a_valid_request_parses_as_one(id in any::<u32>(), method in "[a-z]{1,8}(/[a-z]{1,8})?") {
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}}).to_string();
        let parsed = Incoming::parse_all(text.as_bytes()).unwrap();
        prop_assert_eq!(parsed.len(), 1);
        let is_request = matches!(&parsed[0], Incoming::Request { method: m, .. } if *m == method);
        prop_assert!(is_request);
    }

    #[test]
    fn the_settings_loader_takes_any_text(text in "\\PC{0,400}") {
        let _ = Settings::parse(&text, &|_| None);
    }

    #[test]
    fn settings_problems_always_have_a_place(document in settings_document()) {
        match Settings::parse(&document, &|_| Some("v".to_string())) {
            Ok(_) => {}
            Err(SettingsError::Invalid { problems }) => {
                prop_assert!(!problems.is_empty());
                for problem in &problems {
                    prop_assert!(!problem.message.is_empty(), "{document}");
                }
            }
            Err(other) => prop_assert!(false, "{other} for\n{document}"),
        }
    }
}

/// YAML documents made of the format's keys with values of every type, often wrong.
fn settings_document() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("true".to_string()),
        Just("''".to_string()),
        Just("x".to_string()),
        Just("[a, 1]".to_string()),
        Just("{a: 1}".to_string()),
        Just("http://127.0.0.1:1/mcp".to_string()),
        Just("'${X}'".to_string()),
        Just("read".to_string()),
        Just("127.0.0.1:0".to_string()),
    ];
    let top_keys = prop_oneof![
        Just("listen"),
        Just("separator"),
        Just("tool_cache_ttl_secs"),
        Just("max_body_bytes"),
        Just("aliases"),
        Just("api_keys"),
        Just("policies"),
        Just("oauth"),
        Just("servers"),
        Just("unknown_key"),
    ];
    let server_keys = prop_oneof![
        Just("name"),
        Just("url"),
        Just("command"),
        Just("transport"),
        Just("auth"),
        Just("headers"),
        Just("token_exchange"),
        Just("timeout_ms"),
        Just("protocol"),
    ];
    let server = prop::collection::vec((server_keys, scalar.clone()), 0..6).prop_map(|pairs| {
        let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("  - {{{}}}", body.join(", "))
    });
    (
        prop::collection::vec((top_keys, scalar), 0..6),
        prop::collection::vec(server, 0..3),
    )
        .prop_map(|(pairs, servers)| {
            let mut text = String::new();
            for (key, value) in pairs {
                if key != "servers" {
                    text.push_str(&format!("{key}: {value}\n"));
                }
            }
            if !servers.is_empty() {
                text.push_str("servers:\n");
                for server in servers {
                    text.push_str(&server);
                    text.push('\n');
                }
            }
            text
        })
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Incoming::parse_all(deep.as_bytes()).is_err());
    let deep_object = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{}1{}}}",
        "{\"a\":".repeat(50_000),
        "}".repeat(50_000)
    );
    assert!(Incoming::parse_all(deep_object.as_bytes()).is_err());
    let yaml = format!("listen: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Settings::parse(&yaml, &|_| None).is_err());
}
