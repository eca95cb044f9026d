//! Tool definitions: [`Tool`], [`ToolInputSchema`], [`PropertySchema`], the result of a
//! call ([`ToolResult`]), argument validation ([`ArgumentValidator`]) and the conversion
//! to OpenAI function definitions.
//!
//! Invariant: nothing a server sends is lost. Schemas are JSON objects kept verbatim
//! (the builders only add keys), and `Tool` keeps fields it does not know in `extra`, so
//! `serde_json::to_value(serde_json::from_value::<Tool>(v))` gives back `v`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// A tool offered by an MCP server, or defined by hand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// The tool's name on its server.
    pub name: String,
    /// What the tool does, for a model to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the arguments.
    #[serde(rename = "inputSchema", default)]
    pub input_schema: ToolInputSchema,
    /// Every other field the server sent (`title`, `outputSchema`, `annotations`,
    /// `icons`, `_meta`, fields of future revisions), unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
    /// The server the tool came from, when it was discovered through a gateway.
    #[serde(skip)]
    pub server_name: Option<String>,
    /// The gateway-wide unique name (`<server><separator><tool>`), when it was
    /// discovered through a gateway.
    #[serde(skip)]
    pub qualified_name: Option<String>,
}

impl Tool {
    /// A tool with a name, a description and an empty object schema.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Tool {
            name: name.into(),
            description: Some(description.into()),
            input_schema: ToolInputSchema::new(),
            extra: Map::new(),
            server_name: None,
            qualified_name: None,
        }
    }

    /// Sets the schema of the arguments.
    #[must_use]
    pub fn with_input_schema(mut self, schema: ToolInputSchema) -> Self {
        self.input_schema = schema;
        self
    }

    /// The name a model should use: the qualified name when the tool came through a
    /// gateway, else its own name.
    pub fn exposed_name(&self) -> &str {
        self.qualified_name.as_deref().unwrap_or(&self.name)
    }

    /// The tool as an OpenAI Chat Completions tool:
    /// `{"type":"function","function":{"name","description","parameters"}}`.
    ///
    /// The name is [`Tool::exposed_name`], so tools of different servers stay distinct.
    pub fn to_openai_function(&self) -> Value {
        let mut function = Map::new();
        function.insert("name".into(), Value::from(self.exposed_name()));
        if let Some(description) = &self.description {
            function.insert("description".into(), Value::from(description.as_str()));
        }
        function.insert(
            "parameters".into(),
            self.input_schema.to_openai_parameters(),
        );
        json!({"type": "function", "function": function})
    }

    /// Why the tool's `x-mcp-header` annotations make it unusable in the stateless
    /// revision (SEP-2243), if they do: an annotation that is not a usable header-name
    /// suffix (ASCII letters, digits, `-`, `_`), one on a property that is not a string,
    /// integer or boolean (objects, arrays, null and numbers have no header form), or two
    /// annotations naming the same header, compared case-insensitively. Such a tool is
    /// left out of lists, with a warning.
    pub fn param_header_problem(&self) -> Option<String> {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (property, schema) in self.input_schema.properties() {
            let Some(annotation) = schema.get("x-mcp-header") else {
                continue;
            };
            let Some(name) = annotation.as_str().filter(|n| {
                !n.is_empty()
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }) else {
                return Some(format!(
                    "property '{property}': x-mcp-header {annotation} is not a header name"
                ));
            };
            let primitive = matches!(
                schema.get("type").and_then(Value::as_str),
                Some("string" | "integer" | "boolean")
            );
            if !primitive {
                return Some(format!(
                    "property '{property}': x-mcp-header on a property whose type is not string, integer or boolean"
                ));
            }
            if let Some(other) = seen.insert(name.to_ascii_lowercase(), property) {
                return Some(format!(
                    "properties '{other}' and '{property}' both map to header Mcp-Param-{name}"
                ));
            }
        }
        None
    }

    /// The names of the properties marked `x-mcp-header`.
    pub fn header_properties(&self) -> Vec<&str> {
        self.input_schema
            .properties()
            .into_iter()
            .filter(|(_, schema)| schema.get("x-mcp-header").is_some())
            .map(|(name, _)| name)
            .collect()
    }

    /// The tool as an OpenAI Responses API tool:
    /// `{"type":"function","name","description","parameters"}`.
    pub fn to_openai_responses_tool(&self) -> Value {
        let Value::Object(mut tool) = self.to_openai_function() else {
            unreachable!("to_openai_function builds an object")
        };
        if let Some(Value::Object(function)) = tool.remove("function") {
            tool.extend(function);
        }
        Value::Object(tool)
    }
}

/// The JSON Schema of a tool's arguments: a JSON object, kept verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ToolInputSchema(Map<String, Value>);

impl Default for ToolInputSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl ToolInputSchema {
    /// `{"type":"object","properties":{}}`.
    pub fn new() -> Self {
        let mut map = Map::new();
        map.insert("type".into(), Value::from("object"));
        map.insert("properties".into(), Value::Object(Map::new()));
        ToolInputSchema(map)
    }

    /// Wraps a schema object as it came from a server.
    pub fn from_map(map: Map<String, Value>) -> Self {
        ToolInputSchema(map)
    }

    /// Adds a property.
    #[must_use]
    pub fn with_property(mut self, name: impl Into<String>, schema: PropertySchema) -> Self {
        let properties = self
            .0
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if !properties.is_object() {
            *properties = Value::Object(Map::new());
        }
        if let Value::Object(properties) = properties {
            properties.insert(name.into(), schema.into_value());
        }
        self
    }

    /// Sets the required properties.
    #[must_use]
    pub fn with_required(mut self, required: Vec<String>) -> Self {
        self.0.insert("required".into(), Value::from(required));
        self
    }

    /// The properties, by name.
    pub fn properties(&self) -> BTreeMap<&str, &Value> {
        self.0
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default()
    }

    /// The names of the required properties.
    pub fn required(&self) -> Vec<&str> {
        self.0
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    /// The schema as a JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The schema as a JSON value.
    pub fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The schema as OpenAI `parameters`: an object schema, with `type` and `properties`
    /// added when the server left them out (OpenAI rejects a schema without them).
    fn to_openai_parameters(&self) -> Value {
        let mut map = self.0.clone();
        map.entry("type").or_insert_with(|| Value::from("object"));
        map.entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        Value::Object(map)
    }
}

/// The JSON Schema of one property, kept verbatim; the constructors cover the common
/// kinds and the `with_*` methods add keywords.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PropertySchema(Map<String, Value>);

impl PropertySchema {
    fn typed(kind: &str, description: impl Into<String>) -> Self {
        let mut map = Map::new();
        map.insert("type".into(), Value::from(kind));
        map.insert("description".into(), Value::from(description.into()));
        PropertySchema(map)
    }

    /// A string.
    pub fn string(description: impl Into<String>) -> Self {
        Self::typed("string", description)
    }

    /// A number.
    pub fn number(description: impl Into<String>) -> Self {
        Self::typed("number", description)
    }

    /// An integer.
    pub fn integer(description: impl Into<String>) -> Self {
        Self::typed("integer", description)
    }

    /// A boolean.
    pub fn boolean(description: impl Into<String>) -> Self {
        Self::typed("boolean", description)
    }

    /// An array whose items match `items`.
    pub fn array(description: impl Into<String>, items: PropertySchema) -> Self {
        let mut schema = Self::typed("array", description);
        schema.0.insert("items".into(), items.into_value());
        schema
    }

    /// An object with the given properties (a nested schema).
    pub fn object(description: impl Into<String>, properties: ToolInputSchema) -> Self {
        let mut schema = PropertySchema(properties.0);
        schema
            .0
            .insert("description".into(), Value::from(description.into()));
        schema
    }

    /// A string restricted to the given values.
    pub fn enumeration<I, S>(description: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut schema = Self::string(description);
        let values: Vec<Value> = values.into_iter().map(|v| Value::from(v.into())).collect();
        schema.0.insert("enum".into(), Value::Array(values));
        schema
    }

    /// Sets the default value.
    #[must_use]
    pub fn with_default(mut self, default: Value) -> Self {
        self.0.insert("default".into(), default);
        self
    }

    /// Sets any other JSON Schema keyword.
    #[must_use]
    pub fn with_keyword(mut self, keyword: impl Into<String>, value: Value) -> Self {
        self.0.insert(keyword.into(), value);
        self
    }

    /// The schema as a JSON value.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// The result of `tools/call`, exactly as the server sent it.
///
/// A tool that ran and failed is a result whose [`ToolResult::is_error`] is true, not an
/// `Err`. Accessors read the common fields; [`ToolResult::as_value`] gives all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ToolResult(Value);

impl ToolResult {
    /// Wraps a result value.
    pub fn from_value(value: Value) -> Self {
        ToolResult(value)
    }

    /// Whether the tool reported a failure (`isError: true`).
    pub fn is_error(&self) -> bool {
        self.0.get("isError").and_then(Value::as_bool) == Some(true)
    }

    /// The content items (text, image, audio, resource links, embedded resources).
    pub fn content(&self) -> &[Value] {
        self.0
            .get("content")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The texts of the text content items, joined by newlines.
    pub fn text(&self) -> String {
        self.content()
            .iter()
            .filter(|c| c.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `structuredContent`, when the tool returned some.
    pub fn structured_content(&self) -> Option<&Value> {
        self.0.get("structuredContent")
    }

    /// The whole result.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The whole result, owned.
    pub fn into_value(self) -> Value {
        self.0
    }
}

/// A tool's input schema compiled for validation.
pub struct ArgumentValidator {
    validator: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for ArgumentValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgumentValidator")
            .field("compiled", &self.validator.is_some())
            .finish()
    }
}

/// Why arguments were rejected: the field (a JSON pointer) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentError {
    /// The offending field as a JSON pointer (`/city`); for a missing required property,
    /// the pointer to where it should be; `arguments` for the whole value.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl ArgumentValidator {
    /// Compiles a tool's input schema. A schema that does not compile (a server's
    /// mistake) gives a validator that accepts everything and leaves checking to the
    /// server; the reason is logged.
    pub fn compile(tool: &Tool) -> Self {
        let schema = tool.input_schema.to_value();
        match jsonschema::validator_for(&schema) {
            Ok(validator) => ArgumentValidator {
                validator: Some(validator),
            },
            Err(error) => {
                tracing::warn!(tool = %tool.name, %error, "tool input schema does not compile; arguments will not be checked locally");
                ArgumentValidator { validator: None }
            }
        }
    }

    /// Checks arguments against the schema.
    ///
    /// # Errors
    /// The first problem found, naming the field.
    pub fn validate(&self, arguments: &Value) -> Result<(), ArgumentError> {
        if !arguments.is_object() {
            return Err(ArgumentError {
                field: "arguments".to_string(),
                message: format!("must be a JSON object, got {}", json_kind(arguments)),
            });
        }
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let mut errors: Vec<jsonschema::ValidationError<'_>> =
            validator.iter_errors(arguments).take(8).collect();
        if errors.is_empty() {
            return Ok(());
        }
        // A missing required property is what the caller must fix first; name it.
        errors.sort_by_key(|e| missing_property(e).is_none());
        let first = &errors[0];
        let path = first.instance_path().to_string();
        let field = match (missing_property(first), unexpected_property(first)) {
            (Some(name), _) | (None, Some(name)) => format!("{path}/{name}"),
            _ if path.is_empty() => "arguments".to_string(),
            _ => path,
        };
        let message = errors
            .iter()
            .take(3)
            .map(|e| match e.instance_path().to_string() {
                p if p.is_empty() => e.to_string(),
                p => format!("{p}: {e}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Err(ArgumentError { field, message })
    }
}

fn unexpected_property(error: &jsonschema::ValidationError<'_>) -> Option<String> {
    match error.kind() {
        jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
            unexpected.first().cloned()
        }
        _ => None,
    }
}

fn missing_property(error: &jsonschema::ValidationError<'_>) -> Option<String> {
    match error.kind() {
        jsonschema::error::ValidationErrorKind::Required { property } => {
            property.as_str().map(str::to_string)
        }
        _ => None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Tool {
        Tool::new("get_weather", "Get current weather for a location").with_input_schema(
            ToolInputSchema::new()
                .with_property("city", PropertySchema::string("City name"))
                .with_property(
                    "units",
                    PropertySchema::enumeration("Units", ["celsius", "fahrenheit"])
                        .with_default(json!("celsius")),
                )
                .with_property("days", PropertySchema::integer("Days ahead"))
                .with_required(vec!["city".to_string()]),
        )
    }

    #[test]
    fn builds_the_schema_the_seed_describes() {
        let tool = weather();
        let schema = tool.input_schema.to_value();
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["properties"]["city"]["type"], "string");
        assert_eq!(schema["properties"]["units"]["enum"][1], "fahrenheit");
        assert_eq!(schema["properties"]["units"]["default"], "celsius");
        assert_eq!(schema["required"], json!(["city"]));
        assert_eq!(tool.input_schema.required(), vec!["city"]);
    }

    #[test]
    fn nested_and_array_properties() {
        let schema = ToolInputSchema::new()
            .with_property(
                "tags",
                PropertySchema::array("Tags", PropertySchema::string("a tag")),
            )
            .with_property(
                "filter",
                PropertySchema::object(
                    "A filter",
                    ToolInputSchema::new()
                        .with_property("min", PropertySchema::number("minimum"))
                        .with_property("exact", PropertySchema::boolean("exact match")),
                ),
            );
        let v = schema.to_value();
        assert_eq!(v["properties"]["tags"]["items"]["type"], "string");
        assert_eq!(
            v["properties"]["filter"]["properties"]["exact"]["type"],
            "boolean"
        );
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let wire = json!({
            "name": "t",
            "title": "T",
            "description": "d",
            "inputSchema": {"type": "object", "properties": {"x": {"type": ["string", "null"], "x-custom": 1}},
                            "$defs": {"a": {}}, "additionalProperties": false},
            "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true},
            "icons": [{"src": "https://x/i.png"}],
            "_meta": {"k": "v"},
            "futureField": [1, 2]
        });
        let tool: Tool = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(serde_json::to_value(&tool).unwrap(), wire);
        let minimal: Tool = serde_json::from_value(json!({"name": "m"})).unwrap();
        assert_eq!(minimal.input_schema.as_map()["type"], "object");
    }

    #[test]
    fn openai_formats() {
        let mut tool = weather();
        let f = tool.to_openai_function();
        assert_eq!(f["type"], "function");
        assert_eq!(f["function"]["name"], "get_weather");
        assert_eq!(f["function"]["parameters"]["required"], json!(["city"]));
        tool.qualified_name = Some("wx__get_weather".into());
        let r = tool.to_openai_responses_tool();
        assert_eq!(r["name"], "wx__get_weather");
        assert_eq!(r["type"], "function");
        assert!(r.get("function").is_none());
        let bare: Tool = serde_json::from_value(json!({"name":"b","inputSchema":{}})).unwrap();
        assert_eq!(
            bare.to_openai_function()["function"]["parameters"],
            json!({"type":"object","properties":{}})
        );
    }

    #[test]
    fn validation_names_the_offending_field() {
        let v = ArgumentValidator::compile(&weather());
        assert!(v.validate(&json!({"city": "Paris"})).is_ok());
        let e = v.validate(&json!({"units": "celsius"})).unwrap_err();
        assert_eq!(e.field, "/city");
        let e = v
            .validate(&json!({"city": "Paris", "days": "two"}))
            .unwrap_err();
        assert_eq!(e.field, "/days");
        assert!(e.message.contains("integer"), "{}", e.message);
        let e = v
            .validate(&json!({"city": "Paris", "units": "kelvin"}))
            .unwrap_err();
        assert_eq!(e.field, "/units");
        let e = v.validate(&json!([1])).unwrap_err();
        assert_eq!(e.field, "arguments");
    }

    #[test]
    fn results_keep_every_field() {
        let r = ToolResult::from_value(json!({
            "content": [{"type": "text", "text": "a"}, {"type": "image", "data": "AA==", "mimeType": "image/png"}],
            "structuredContent": {"sum": 3},
            "isError": false,
            "_meta": {"m": 1},
            "x-extra": 1
        }));
        assert_eq!(r.text(), "a");
        assert!(!r.is_error());
        assert_eq!(r.structured_content(), Some(&json!({"sum": 3})));
        assert_eq!(r.as_value()["x-extra"], 1);
        assert_eq!(r.content().len(), 2);
    }

    #[test]
    fn header_annotations_must_be_primitive_named_and_distinct() {
        let tool = |properties: Value| -> Tool {
            serde_json::from_value(
                json!({"name": "t", "inputSchema": {"type": "object", "properties": properties}}),
            )
            .unwrap()
        };
        assert_eq!(
            tool(json!({"r": {"type": "string", "x-mcp-header": "Region"}, "n": {"type": "integer", "x-mcp-header": "N"}, "b": {"type": "boolean", "x-mcp-header": "B"}}))
                .param_header_problem(),
            None
        );
        for bad in [
            json!({"o": {"type": "object", "x-mcp-header": "O"}}),
            json!({"a": {"type": "array", "x-mcp-header": "A"}}),
            json!({"z": {"type": "null", "x-mcp-header": "Z"}}),
            json!({"f": {"type": "number", "x-mcp-header": "F"}}),
            json!({"s": {"type": "string", "x-mcp-header": "bad name"}}),
            json!({"s": {"type": "string", "x-mcp-header": 3}}),
            json!({"a": {"type": "string", "x-mcp-header": "Region"}, "b": {"type": "string", "x-mcp-header": "region"}}),
        ] {
            assert!(tool(bad.clone()).param_header_problem().is_some(), "{bad}");
        }
        assert_eq!(
            tool(json!({"r": {"type": "string", "x-mcp-header": "R"}, "x": {"type": "string"}}))
                .header_properties(),
            vec!["r"]
        );
    }
}
