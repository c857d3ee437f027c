//! The HTTP clients bty-web fetches with on an operator's behalf (catalog import, adding an
//! entry, `sha_url`, the `/images` registry proxy). Both come from
//! [`bty_source::HttpClient::guarded`]: at most 5 redirects, http(s) only, never a link-local or
//! cloud-metadata address. The operator can still point bty-web at any host on its LAN — that
//! is by design, and the trust model in docs/operator-guide.md says so. Which sources may be fetched at
//! all (http(s) and oras://, never a local path — a deliberate break from upstream 0.47, whose
//! import read any path on the server) is `bty_source::catalog::fetchable`.

use std::time::Duration;

use bty_source::HttpClient;

/// A whole operator-requested fetch (a catalog, a checksum file, a manifest) ends within this.
pub const OPERATOR_FETCH: Duration = Duration::from_secs(120);

/// For small documents an operator asks for: the whole exchange is bounded in time.
pub fn operator() -> HttpClient {
    HttpClient::guarded(Some(OPERATOR_FETCH))
}

/// For the registry proxy, whose blob streams are as long as the image (idle reads still time
/// out).
pub fn proxy() -> HttpClient {
    HttpClient::guarded(None)
}
