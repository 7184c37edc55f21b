#![no_main]
//! An MCP guest (`wharf mcp`) whose functions cover every WIT type, plus hostile ones: `spin`
//! loops forever, `chatty` writes JSON-RPC-looking lines to stdout and stderr, `crash` panics,
//! `hog` grows memory. World `wharf:guests/mcp-types`.
use std::f64::consts::PI;

wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/mcp-types",
    generate_all,
});

use exports::wharf::guests::types::{Everything, Guest as Types, Item, Shape};

struct McpTypes;

impl Guest for McpTypes {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }
}

impl Types for McpTypes {
    fn echo(value: Everything) -> Everything {
        value
    }

    fn total(items: Vec<Item>) -> u32 {
        items.iter().map(|item| u32::from(item.qty)).sum()
    }

    fn area(shape: Shape) -> f64 {
        match shape {
            Shape::Circle(r) => PI * r * r,
            Shape::Rect((w, h)) => w * h,
            Shape::Point => 0.0,
        }
    }

    fn divide(a: i32, b: i32) -> Result<i32, String> {
        if b == 0 {
            return Err("division by zero".to_string());
        }
        a.checked_div(b).ok_or_else(|| "overflow".to_string())
    }

    fn nothing() {}

    fn spin() {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    fn chatty(lines: u32) -> u32 {
        for n in 0..lines {
            println!(r#"{{"jsonrpc":"2.0","garbage":{n}}}"#);
            eprintln!(r#"{{"jsonrpc":"2.0","garbage":{n}}}"#);
        }
        lines
    }

    fn crash() {
        panic!("crash requested");
    }

    fn hog(mib: u32) -> u32 {
        const PAGE: usize = 4096;
        let size = mib as usize * 1024 * 1024;
        let mut bytes = vec![0u8; size];
        for i in (0..size).step_by(PAGE) {
            bytes[i] = 1;
        }
        std::hint::black_box(&bytes);
        mib
    }
}

export!(McpTypes);
