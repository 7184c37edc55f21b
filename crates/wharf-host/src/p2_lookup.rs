//! `wasi:sockets/ip-name-lookup@0.2` through [`GuestNet::lookup`], in place of wasmtime-wasi's
//! own, which resolves any name once lookups are allowed at all (`allow_ip_name_lookup`), on
//! tokio's blocking pool. [`add_to_linker`] redefines the interface on a linker that already
//! has wasmtime-wasi's WASI 0.2, and wharf never enables wasmtime-wasi's lookups, so a linker
//! that missed the redefinition fails every lookup rather than resolving everything.
//!
//! wasmtime-wasi's bindings fix the resource type of `resolve-address-stream` to its own
//! struct, whose fields are private. The streams made here are [`Lookup`] entries of the
//! resource table; the guest's handle carries the table index (`rep`) under wasmtime-wasi's
//! type, and every method below turns it back into a [`Lookup`] handle. The table checks the
//! entry's type on every access, so a handle of another type is refused, not misread.
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{self, ResolveAddressStream};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError, subscribe};

use crate::guest_net::{GuestNet, LookupCode, LookupError};

/// What the lookup functions need of a store.
pub(crate) struct LookupView<'a> {
    /// The store's network checks.
    pub(crate) net: &'a Arc<GuestNet>,
    /// The store's resource table.
    pub(crate) table: &'a mut ResourceTable,
}

struct Lookups;

impl HasData for Lookups {
    type Data<'a> = LookupView<'a>;
}

/// Replaces the `ip-name-lookup` functions wasmtime-wasi's `add_to_linker_async` put in
/// `linker` by wharf's.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> LookupView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = ip_name_lookup::add_to_linker::<T, Lookups>(linker, get);
    linker.allow_shadowing(false);
    added
}

type Pending = Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, LookupError>> + Send>>;

/// One `resolve-address-stream`: the lookup until it finishes, then its addresses.
enum Lookup {
    Pending(Pending),
    Done(Result<std::vec::IntoIter<IpAddr>, LookupError>),
}

impl Lookup {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Lookup::Pending(future) = self {
            match future.as_mut().poll(cx) {
                Poll::Ready(result) => *self = Lookup::Done(result.map(Vec::into_iter)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Lookup {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }
}

fn as_lookup(stream: &Resource<ResolveAddressStream>) -> Resource<Lookup> {
    if stream.owned() { Resource::new_own(stream.rep()) } else { Resource::new_borrow(stream.rep()) }
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

// Required by the bindings (the lookup functions use `network`'s types and error conversion);
// the `network` interface itself stays wasmtime-wasi's, so only `convert_error_code` is called.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(&mut self, err: Resource<network::Error>) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(self.table.get(&err)?.downcast_ref::<std::io::Error>().map(ErrorCode::from))
    }
}

impl network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(network)?;
        Ok(())
    }
}

impl ip_name_lookup::Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // The network handle is the capability to call this; it has no other use.
        self.table.get(&network)?;
        let mut lookup = Lookup::Pending(Box::pin(self.net.lookup(&name)));
        // Start the lookup now, and fail at once when the name is refused.
        let _ = lookup.poll(&mut Context::from_waker(Waker::noop()));
        if let Lookup::Done(Err(e)) = &lookup {
            return Err(error_code(e).into());
        }
        let handle = self.table.push(lookup)?;
        Ok(Resource::new_own(handle.rep()))
    }
}

impl ip_name_lookup::HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let lookup = self.table.get_mut(&as_lookup(&stream))?;
        if lookup.poll(&mut Context::from_waker(Waker::noop())).is_pending() {
            return Err(ErrorCode::WouldBlock.into());
        }
        match lookup {
            Lookup::Done(Ok(addresses)) => Ok(addresses.next().map(IpAddress::from)),
            Lookup::Done(Err(e)) => Err(error_code(e).into()),
            Lookup::Pending(_) => Err(ErrorCode::WouldBlock.into()),
        }
    }

    fn subscribe(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, as_lookup(&stream))
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table.delete(as_lookup(&stream))?;
        Ok(())
    }
}
