//! The gateway's link to core: a gRPC channel and the key that mints caller tokens.
use std::time::Duration;

use core_cartella::auth::{Caller, TokenError, TokenSigner};
use tonic::transport::Channel;

/// Lifetime of the caller tokens the gateway mints for core: long enough for one call
/// (a feed stream is authenticated once, when it opens), short enough to be useless if leaked.
pub const CALLER_TOKEN_TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct CoreLink {
    channel: Channel,
    signer: TokenSigner,
}

impl CoreLink {
    pub fn new(channel: Channel, signer: TokenSigner) -> Self {
        Self { channel, signer }
    }

    /// Lazily connecting channel to core at `url` (e.g. `http://127.0.0.1:50051`).
    pub fn connect_lazy(url: &str, signer: TokenSigner) -> Result<Self, http::uri::InvalidUri> {
        let channel = Channel::from_shared(url.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy();
        Ok(Self { channel, signer })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// `authorization` value carrying a fresh caller token for `caller`.
    pub fn bearer_for(&self, caller: &Caller) -> Result<String, TokenError> {
        Ok(format!("Bearer {}", self.signer.mint(caller, CALLER_TOKEN_TTL)?))
    }
}
