#![no_main]
//! An MCP guest (`wharf mcp`) whose WIT carries doc comments; the artifacts build appends them
//! as a `package-docs` custom section, so tool descriptions can come from them.
//! World `wharf:guests/mcp-docs`.
wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/mcp-docs",
    generate_all,
});

use exports::wharf::guests::notes::Guest as Notes;

struct McpDocs;

impl Guest for McpDocs {
    fn greet(name: String) -> String {
        format!("Hello, {name}!")
    }
}

impl Notes for McpDocs {
    fn reverse(text: String) -> String {
        text.chars().rev().collect()
    }

    fn word_count(text: String) -> u32 {
        text.split_whitespace().count() as u32
    }
}

export!(McpDocs);
