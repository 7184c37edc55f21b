//! Integration tests: the real `wharf` binary on real guest components built from
//! `crates/test-programs`.
mod bad_input;
mod blobstore;
mod blobstore_s3;
mod cache;
mod config;
mod credentials;
mod dirs;
mod exhaustion;
mod hostile;
mod interop;
mod jetstream;
mod keyvalue;
mod mcp;
mod mcp_load_files;
mod mcp_talk_limits;
mod messaging;
mod messaging_limits;
mod moto;
mod net;
mod oci;
mod p3;
mod p3_stream;
mod redis;
mod registry;
mod registry_limits;
mod run;
mod sandbox;
mod serve;
mod state_dirs;
mod util;

// Every guest program must have a test function named after it.
#[allow(unused_imports)]
use self::{
    bad_input::*, blobstore::*, cache::*, config::*, hostile::*, keyvalue::*, mcp::*, mcp_talk_limits::*, messaging::*,
    net::*, oci::*, p3::*, p3_stream::*, run::*, sandbox::*, serve::*,
};
macro_rules! assert_guest_has_test {
    ($name:ident) => {
        #[allow(unused_imports)]
        use self::$name as _;
    };
}
test_programs_artifacts::foreach_guest!(assert_guest_has_test);
