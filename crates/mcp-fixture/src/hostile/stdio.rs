//! The hostile stdio servers: plain blocking I/O on the main thread, one request at a
//! time. Each tool call first writes a line to stderr, as real servers log, so that a
//! gateway that stopped reading stderr kills us: a failed write to stderr or stdout
//! exits with status 141, as a process killed by SIGPIPE would (Rust ignores SIGPIPE).

use std::io::{BufRead, BufWriter, Write};

use serde_json::{json, Value};

use super::{common_answer, error, result, text, tool, Mode, Options};

/// Exit status after a broken pipe (128 + SIGPIPE).
const BROKEN_PIPE: i32 = 141;
/// Bytes written at once by the floods.
const BLOCK: usize = 64 * 1024;

/// Serves `mode` on stdin/stdout until stdin closes; returns the exit status.
pub fn run(mode: Mode, options: &Options) -> i32 {
    if mode == Mode::StdioDeaf {
        // Never reads stdin, never answers; ends when killed.
        log("deaf: not reading stdin");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    let stdin = std::io::stdin();
    let mut stdin = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return 0,
            Ok(_) => {}
        }
        let Ok(request) = serde_json::from_slice::<Value>(line.trim_ascii()) else {
            continue;
        };
        let Some(id) = request.get("id").cloned() else {
            continue; // a notification
        };
        let answer = match common_answer(&request) {
            Some(answer) => Some(answer),
            None if mode == Mode::StdioToolBomb => Some(tool_bomb(&request, &id, options)),
            None => misbehave(&request, &id),
        };
        if let Some(answer) = answer {
            write_stdout_json(&answer);
        }
    }
}

fn log(message: &str) {
    let mut stderr = std::io::stderr().lock();
    if writeln!(stderr, "mcp-fixture hostile: {message}").is_err() || stderr.flush().is_err() {
        std::process::exit(BROKEN_PIPE);
    }
}

fn write_stderr(bytes: &[u8]) {
    let mut stderr = std::io::stderr().lock();
    if stderr.write_all(bytes).is_err() || stderr.flush().is_err() {
        std::process::exit(BROKEN_PIPE);
    }
}

fn write_stdout(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(bytes).is_err() || stdout.flush().is_err() {
        std::process::exit(BROKEN_PIPE);
    }
}

fn write_stdout_json(value: &Value) {
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(BLOCK, stdout.lock());
    let written = serde_json::to_writer(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if written.is_err() {
        std::process::exit(BROKEN_PIPE);
    }
}

/// `n` bytes of `byte` in blocks, with a newline after every `line_bytes` bytes (none
/// when 0).
fn flood(mut write: impl FnMut(&[u8]), n: usize, line_bytes: usize, byte: u8) {
    // A whole number of lines per block, so that every line has `line_bytes`.
    let size = match line_bytes {
        0 => BLOCK,
        _ => (BLOCK / line_bytes).max(1) * line_bytes,
    };
    let mut block = vec![byte; size];
    if line_bytes > 0 {
        for (i, b) in block.iter_mut().enumerate() {
            if (i + 1) % line_bytes == 0 {
                *b = b'\n';
            }
        }
    }
    let mut left = n;
    while left > 0 {
        let take = left.min(size);
        write(block.get(..take).unwrap_or_default());
        left -= take;
    }
}

fn arg_usize(request: &Value, name: &str, default: usize) -> usize {
    request
        .pointer(&format!("/params/arguments/{name}"))
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(default)
}

const TOOLS: &[&str] = &[
    "echo",
    "pid",
    "stderr_line",
    "stderr_non_utf8",
    "stderr_flood",
    "stdout_non_utf8",
    "stdout_junk_line",
    "stdout_overlong",
];

fn misbehave(request: &Value, id: &Value) -> Option<Value> {
    let method = request.get("method").and_then(Value::as_str)?;
    if method == "tools/list" {
        let tools: Vec<Value> = TOOLS.iter().map(|name| tool(name)).collect();
        return Some(result(id, json!({"tools": tools})));
    }
    let name = request.pointer("/params/name").and_then(Value::as_str)?;
    log(&format!("called {name}"));
    let answer = match name {
        "echo" => text(
            request
                .pointer("/params/arguments/text")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
        "pid" => text(&std::process::id().to_string()),
        // A stack trace on one line.
        "stderr_line" => {
            let mut line = vec![b'E'; arg_usize(request, "bytes", 10 * 1024)];
            line.push(b'\n');
            write_stderr(&line);
            text("ok")
        }
        "stderr_non_utf8" => {
            write_stderr(b"not UTF-8: \xff\xfe\xc3\x28 end\n");
            text("ok")
        }
        // `bytes` of stderr, in lines of `line_bytes` (0: no newline at all).
        "stderr_flood" => {
            flood(
                write_stderr,
                arg_usize(request, "bytes", 50 << 20),
                arg_usize(request, "line_bytes", 0),
                b'F',
            );
            write_stderr(b"\n");
            text("ok")
        }
        "stdout_non_utf8" => {
            write_stdout(b"\xff\xfe{\"not\": \"utf-8\"}\n");
            text("ok")
        }
        // A line of `bytes` that is no message, then the answer.
        "stdout_junk_line" => {
            flood(write_stdout, arg_usize(request, "bytes", 17 << 20), 0, b'x');
            write_stdout(b"\n");
            text("ok")
        }
        // The answer itself, `bytes` long, naming its id first (`at: head`, as the
        // Python SDK writes) or last (`at: tail`, as the TypeScript SDK writes).
        "stdout_overlong" => {
            let bytes = arg_usize(request, "bytes", 17 << 20);
            let at_tail = request
                .pointer("/params/arguments/at")
                .and_then(Value::as_str)
                == Some("tail");
            let id = serde_json::to_string(id).unwrap_or_default();
            let open = r#"{"content":[{"type":"text","text":""#;
            let close = r#""}]}"#;
            if at_tail {
                write_stdout(format!(r#"{{"result":{open}"#).as_bytes());
                flood(write_stdout, bytes, 0, b'x');
                write_stdout(format!(r#"{close},"jsonrpc":"2.0","id":{id}}}"#).as_bytes());
            } else {
                write_stdout(format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{open}"#).as_bytes());
                flood(write_stdout, bytes, 0, b'x');
                write_stdout(format!(r#"{close}}}"#).as_bytes());
            }
            write_stdout(b"\n");
            return None;
        }
        other => return Some(error(id, -32602, &format!("unknown tool {other}"))),
    };
    Some(result(id, answer))
}

/// A page of the tool bomb: `cursor` is the page number.
fn tool_bomb(request: &Value, id: &Value, options: &Options) -> Value {
    let method = request
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if method == "tools/call" {
        return result(id, text("ok"));
    }
    let page: usize = request
        .pointer("/params/cursor")
        .and_then(Value::as_str)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let tools: Vec<Value> = (0..options.page_tools)
        .map(|i| tool(&format!("t{page}_{i}")))
        .collect();
    let mut body = json!({"tools": tools});
    if page + 1 < options.pages {
        body["nextCursor"] = Value::from((page + 1).to_string());
    }
    result(id, body)
}
