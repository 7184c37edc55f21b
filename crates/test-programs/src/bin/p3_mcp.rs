#![no_main]
//! A component whose exports are `async func`s (the component-model async ABI WASI 0.3 guests
//! use), for `wharf mcp` and `wharf call`. World `wharf:guests/p3-tools`.
wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/p3-tools",
    generate_all,
});

use exports::wharf::guests::async_tools::Guest;

struct Tools;

impl Guest for Tools {
    async fn slow_add(a: u32, b: u32) -> u32 {
        for _ in 0..3 {
            wit_bindgen::yield_async().await;
        }
        a.wrapping_add(b)
    }

    async fn greet(name: String) -> Result<String, String> {
        wit_bindgen::yield_async().await;
        if name.is_empty() { Err("name is empty".into()) } else { Ok(format!("Hello, {name}!")) }
    }

    async fn stall() {
        loop {
            wit_bindgen::yield_async().await;
        }
    }
}

export!(Tools);
