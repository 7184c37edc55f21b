#![no_main]
//! A tool that abuses `wharf:mcp/context`: floods the client with log messages, progress
//! reports and content blocks of a chosen size. World `wharf:guests/mcp-hostile`.
wit_bindgen::generate!({
    path: "wit",
    world: "wharf:guests/mcp-hostile",
    generate_all,
});

use wharf::mcp::context::{self, Content, LogLevel, Media};

/// `kib` KiB of text, different per `i` so nothing can be shared.
fn text(i: u32, kib: u32) -> String {
    let mut s = format!("{i:08} ");
    s.extend(std::iter::repeat_n('x', (kib as usize * 1024).saturating_sub(s.len())));
    s
}

struct Hostile;

impl Guest for Hostile {
    fn log_flood(count: u32, kib: u32) -> u32 {
        for i in 0..count {
            context::log(LogLevel::Info, Some("flood"), &text(i, kib));
        }
        count
    }

    fn progress_flood(count: u32, kib: u32) -> u32 {
        for i in 0..count {
            context::progress(f64::from(i), Some(f64::from(count)), Some(&text(i, kib)));
        }
        count
    }

    fn content_flood(count: u32, kib: u32) -> u32 {
        let mut data = vec![0u8; kib as usize * 1024];
        for i in 0..count {
            data[..4].copy_from_slice(&i.to_le_bytes());
            context::add_content(&Content::Image(Media { data: data.clone(), mime_type: "image/png".into() }));
        }
        count
    }
}

export!(Hostile);
