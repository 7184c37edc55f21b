#![no_main]
//! The test tools of the MCP conformance suite's reference server (`@modelcontextprotocol/
//! conformance`), written against `wharf:mcp/context`: content blocks, progress, log messages,
//! sampling and elicitation. World `wharf:guests/mcp-conformance`.
use std::time::Duration;

wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/mcp-conformance",
    generate_all,
});

use wharf::mcp::context::{
    self, Content, ElicitAction, LogLevel, Media, ResourceBody, ResourceContents, Role, SamplingMessage,
    SamplingRequest,
};

/// A 1x1 red PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49,
    0x44, 0x41, 0x54, 0x08, 0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d, 0xb0,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// A WAV header with no samples (44 bytes, 8 kHz mono 8-bit).
fn wav() -> Vec<u8> {
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&36u32.to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&0u32.to_le_bytes());
    wav
}

fn image() -> Content {
    Content::Image(Media { data: PNG.to_vec(), mime_type: "image/png".into() })
}

fn elicit(message: &str, schema: &str) -> Result<String, String> {
    let answer = context::elicit(message, schema)?;
    let action = match answer.action {
        ElicitAction::Accept => "accept",
        ElicitAction::Decline => "decline",
        ElicitAction::Cancel => "cancel",
    };
    let text = format!("Elicitation completed: action={action}, content={}", answer.content.unwrap_or_default());
    context::add_content(&Content::Text(text.clone()));
    Ok(text)
}

struct Conformance;

impl Guest for Conformance {
    fn test_simple_text() -> String {
        "This is a simple text response for testing.".into()
    }

    fn test_image_content() {
        context::add_content(&image());
    }

    fn test_audio_content() {
        context::add_content(&Content::Audio(Media { data: wav(), mime_type: "audio/wav".into() }));
    }

    fn test_embedded_resource() {
        context::add_content(&Content::Resource(ResourceContents {
            uri: "test://embedded-resource".into(),
            mime_type: Some("text/plain".into()),
            body: ResourceBody::Text("This is an embedded resource content.".into()),
        }));
    }

    fn test_multiple_content_types() {
        context::add_content(&Content::Text("Multiple content types test:".into()));
        context::add_content(&image());
        context::add_content(&Content::Resource(ResourceContents {
            uri: "test://mixed-content-resource".into(),
            mime_type: Some("application/json".into()),
            body: ResourceBody::Text(r#"{"test":"data","value":123}"#.into()),
        }));
    }

    fn test_tool_with_logging() -> String {
        context::log(LogLevel::Info, None, "Tool execution started");
        std::thread::sleep(Duration::from_millis(50));
        context::log(LogLevel::Info, None, "Tool processing data");
        std::thread::sleep(Duration::from_millis(50));
        context::log(LogLevel::Info, None, "Tool execution completed");
        "Tool with logging executed successfully".into()
    }

    fn test_tool_with_progress() -> String {
        for (i, step) in [0.0, 50.0, 100.0].into_iter().enumerate() {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
            context::progress(step, Some(100.0), None);
        }
        // Clients handle notifications a moment after reading them (the TypeScript SDK in a
        // microtask) and forget a call's progress handler once its result is read: let the last
        // notification be handled before the result follows it in the same read.
        std::thread::sleep(Duration::from_millis(20));
        "Tool with progress executed successfully".into()
    }

    fn test_error_handling() -> Result<(), String> {
        Err("This tool intentionally returns an error for testing".into())
    }

    fn test_sampling(prompt: String) -> Result<String, String> {
        let request = SamplingRequest {
            messages: vec![SamplingMessage { role: Role::User, text: prompt }],
            system_prompt: None,
            max_tokens: 100,
        };
        let answer = context::sample(&request)?;
        let text = format!("LLM response: {}", answer.text);
        context::add_content(&Content::Text(text.clone()));
        Ok(text)
    }

    fn test_elicitation(message: String) -> Result<String, String> {
        let schema = r#"{"type": "object", "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"}},
            "required": ["username", "email"]}"#;
        elicit(&message, schema)
    }

    fn test_elicitation_sep1034_defaults() -> Result<String, String> {
        let schema = r#"{"type": "object", "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "score": {"type": "number", "default": 95.5},
            "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "default": true}}}"#;
        elicit("Please review and update the form fields with defaults", schema)
    }

    fn test_elicitation_sep1330_enums() -> Result<String, String> {
        let schema = r#"{"type": "object", "properties": {
            "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
            "titledSingle": {"type": "string", "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"}]},
            "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]},
            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
            "titledMulti": {"type": "array", "items": {"anyOf": [
                {"const": "value1", "title": "First Choice"},
                {"const": "value2", "title": "Second Choice"},
                {"const": "value3", "title": "Third Choice"}]}}}}"#;
        elicit("Please select options from the enum fields", schema)
    }

    fn wait_for_cancel() -> u32 {
        let mut ticks = 0;
        loop {
            context::log(LogLevel::Debug, Some("wait-for-cancel"), &format!("tick {ticks}"));
            std::thread::sleep(Duration::from_millis(50));
            ticks += 1;
        }
    }
}

export!(Conformance);
