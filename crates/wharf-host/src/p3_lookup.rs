//! `wasi:sockets/ip-name-lookup@0.3` through [`GuestNet::lookup`], the twin of
//! [`crate::p2_lookup`]: wasmtime-wasi's own `resolve-addresses` answers any name once lookups
//! are allowed at all (and wharf never allows them), so without this a 0.3 guest could resolve
//! nothing. The same per-store [`GuestNet`] serves both generations: the same granted names,
//! answer filtering, caps and DNS threads, and the addresses a 0.3 lookup returns open the
//! socket check exactly as a 0.2 lookup's do.
//!
//! In 0.3 the function is an `async func` returning the whole list, so no stream resource is
//! needed: the host function awaits the lookup off the store and returns its addresses.
use std::sync::Arc;

use wasmtime::component::{Accessor, Linker};
use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::ErrorCode;
use wasmtime_wasi::p3::bindings::sockets::types::IpAddress;

use crate::guest_net::{GuestNet, LookupCode, LookupError};

/// The instance wasmtime-wasi 48 links the interface under (its WIT package is 0.3.0); guests
/// importing other 0.3.x versions reach it by semver.
const INSTANCE: &str = "wasi:sockets/ip-name-lookup@0.3.0";

/// Replaces the `resolve-addresses` wasmtime-wasi's `p3::add_to_linker` put in `linker` by one
/// that goes through the store's [`GuestNet`] (`get`).
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &Arc<GuestNet>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = linker.instance(INSTANCE).and_then(|mut instance| {
        instance.func_wrap_concurrent("resolve-addresses", move |accessor: &Accessor<T>, (name,): (String,)| {
            Box::pin(async move {
                // Started while the store is at hand; awaited without it (other tasks go on).
                let lookup = accessor.with(|mut access| get(access.get()).lookup(&name));
                let result = match lookup.await {
                    Ok(addresses) => Ok(addresses.into_iter().map(IpAddress::from).collect::<Vec<_>>()),
                    Err(e) => Err(error_code(&e)),
                };
                Ok((result,))
            })
        })
    });
    linker.allow_shadowing(false);
    added
}

fn error_code(e: &LookupError) -> ErrorCode {
    match e.code() {
        LookupCode::InvalidArgument => ErrorCode::InvalidArgument,
        LookupCode::AccessDenied => ErrorCode::AccessDenied,
        LookupCode::NameUnresolvable => ErrorCode::NameUnresolvable,
        LookupCode::TemporaryResolverFailure => ErrorCode::TemporaryResolverFailure,
        LookupCode::PermanentResolverFailure => ErrorCode::PermanentResolverFailure,
    }
}
