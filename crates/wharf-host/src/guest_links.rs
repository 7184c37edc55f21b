//! Symlinks a guest creates stay inside its grant wherever they are moved: `symlink-at` of
//! `wasi:filesystem` (0.2 and 0.3) is redefined on the linker to refuse a target that is
//! absolute or has a `..` component, with `not-permitted` (what WASI already specifies for an
//! absolute target), before wasmtime-wasi's own `symlink-at` runs.
//!
//! Why the rule is on the text and not on where the link points at creation: wasmtime-wasi
//! (cap-std) never follows a symlink out of a preopen, but host tools do (backups, `tar`,
//! a later `--dir` of the same path, an operator's shell). A link whose `..` stays inside at
//! creation (`a/b/up -> ../x`) escapes once the guest renames it or a directory above it to a
//! shallower place (`up -> ../x` at the grant's top). A target made of plain names only
//! resolves downwards from wherever the link sits, so it stays inside any directory holding it.
use std::path::{Component, Path};

use wasmtime::StoreContextMut;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystem, WasiFilesystemView};

/// The instance names wasmtime-wasi 48 links `wasi:filesystem/types` under (its WIT packages);
/// guests importing other 0.2.x / 0.3.x versions reach the same instance by semver.
const P2_TYPES: &str = "wasi:filesystem/types@0.2.12";
const P3_TYPES: &str = "wasi:filesystem/types@0.3.0";
const SYMLINK_AT: &str = "[method]descriptor.symlink-at";

/// Whether a guest may create a symlink to `target`: not empty, relative, and only plain names
/// (and `.`), so it resolves below the directory it sits in, wherever that is moved.
pub(crate) fn target_allowed(target: &str) -> bool {
    !target.is_empty() && Path::new(target).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Replaces WASI 0.2's `symlink-at` in `linker` (which must already hold wasmtime-wasi's 0.2
/// filesystem) by the checked one.
pub(crate) fn add_p2_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = add_p2(linker);
    linker.allow_shadowing(false);
    added
}

/// Replaces WASI 0.3's `symlink-at` in `linker` (which must already hold wasmtime-wasi's 0.3
/// filesystem, so it is on the concurrent engine) by the checked one.
pub(crate) fn add_p3_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = add_p3(linker);
    linker.allow_shadowing(false);
    added
}

fn refused(target: &str) {
    tracing::debug!(target, "guest symlink refused: an absolute or `..` target can leave the grant");
}

type Args = (Resource<Descriptor>, String, String);

fn add_p2<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode as P2Error, HostDescriptor};
    linker.instance(P2_TYPES)?.func_wrap_async(
        SYMLINK_AT,
        |mut store: StoreContextMut<'_, T>, (fd, target, path): Args| {
            Box::new(async move {
                if !target_allowed(&target) {
                    refused(&target);
                    return Ok((Err(P2Error::NotPermitted),));
                }
                let mut view = store.data_mut().filesystem();
                let result = match HostDescriptor::symlink_at(&mut view, fd, target, path).await {
                    Ok(()) => Ok(()),
                    Err(e) => Err(e.downcast()?),
                };
                Ok((result,))
            })
        },
    )?;
    Ok(())
}

fn add_p3<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p3::bindings::filesystem::types::{ErrorCode as P3Error, HostDescriptorWithStore};
    linker.instance(P3_TYPES)?.func_wrap_concurrent(
        SYMLINK_AT,
        |accessor: &Accessor<T>, (fd, target, path): Args| {
            Box::pin(async move {
                if !target_allowed(&target) {
                    refused(&target);
                    return Ok((Err(P3Error::NotPermitted),));
                }
                let fs = accessor.with_getter::<WasiFilesystem>(T::filesystem);
                let result =
                    match <WasiFilesystem as HostDescriptorWithStore<T>>::symlink_at(&fs, fd, target, path).await {
                        Ok(()) => Ok(()),
                        Err(e) => Err(e.downcast()?),
                    };
                Ok((result,))
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::target_allowed;

    #[test]
    fn only_downward_relative_targets() {
        for ok in ["a", "a/b", "./a", "a/./b", "a//b", ".", "..a", "a..", "...", "a/b/"] {
            assert!(target_allowed(ok), "{ok}");
        }
        for bad in ["", "/", "/etc/passwd", "..", "../x", "a/../b", "a/..", "./..", "//x", "a/b/../../.."] {
            assert!(!target_allowed(bad), "{bad}");
        }
    }
}
