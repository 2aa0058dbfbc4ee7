//! `sigess certs`: a private CA and the two certificates the link between gateway and core
//! needs (core's server certificate, the gateway's client certificate for core's mTLS), made
//! with rcgen. For development and for deployments without a PKI of their own; where one
//! exists (cert-manager, an ente's CA), use its certificates instead.
//!
//! The CA's private key is not written: it signs the two certificates and is dropped, so a
//! stolen folder cannot mint more. Run the command again (`--force`) to replace everything.
use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use clap::Args;
use core_cartella::private_fs;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use rustls_pki_types::ServerName;
use time::OffsetDateTime;

/// The files written, in the order core and the gateway use them.
pub const FILES: [&str; 5] = [CA, CORE_CERT, CORE_KEY, GATEWAY_CERT, GATEWAY_KEY];
const CA: &str = "ca.pem";
const CORE_CERT: &str = "core.pem";
const CORE_KEY: &str = "core-key.pem";
const GATEWAY_CERT: &str = "gateway.pem";
const GATEWAY_KEY: &str = "gateway-key.pem";

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Folder to write ca.pem, core.pem, core-key.pem, gateway.pem and gateway-key.pem into
    /// (created owner-only; keys 0600).
    #[arg(long)]
    out: PathBuf,
    /// Name or IP address the gateway uses to reach core (the host of --core-url); repeat
    /// for several.
    #[arg(long = "core-san", default_values = ["localhost", "127.0.0.1"])]
    core_sans: Vec<String>,
    /// Days the certificates are valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// Replace certificates already in --out (otherwise they are left as they are).
    #[arg(long)]
    force: bool,
}

/// The PEM texts of one issue.
#[derive(Debug)]
pub struct Issued {
    pub ca: String,
    pub core_cert: String,
    pub core_key: String,
    pub gateway_cert: String,
    pub gateway_key: String,
}

/// A private CA valid for `days` from `now`, core's server certificate for `core_sans` and
/// the gateway's client certificate, both signed by it.
pub fn issue(core_sans: &[String], now: OffsetDateTime, days: u32) -> Result<Issued> {
    if core_sans.is_empty() {
        bail!("--core-san: give at least one name or address of core");
    }
    let validity = |p: &mut CertificateParams| {
        p.not_before = now - Duration::from_secs(300);
        p.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name.push(DnType::OrganizationName, "SIGeSS hub");
    ca.distinguished_name.push(DnType::CommonName, "SIGeSS hub private CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut ca);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut core = CertificateParams::new(Vec::<String>::new())?;
    for san in core_sans {
        // Parsed as the gateway parses the host of its core URL, so every SAN is one it can match.
        let bad = || format!("--core-san {san:?} is neither a DNS name nor an IP address");
        core.subject_alt_names.push(match ServerName::try_from(san.trim()).with_context(bad)? {
            ServerName::IpAddress(ip) => SanType::IpAddress(std::net::IpAddr::from(ip)),
            ServerName::DnsName(dns) => SanType::DnsName(dns.as_ref().try_into().with_context(bad)?),
            _ => bail!(bad()),
        });
    }
    core.distinguished_name.push(DnType::CommonName, "sigess core");
    core.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    core.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut core);
    let core_key = KeyPair::generate()?;
    let core_cert = core.signed_by(&core_key, &issuer)?;

    let mut gateway = CertificateParams::new(Vec::<String>::new())?;
    gateway.distinguished_name.push(DnType::CommonName, "sigess gateway");
    gateway.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    gateway.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut gateway);
    let gateway_key = KeyPair::generate()?;
    let gateway_cert = gateway.signed_by(&gateway_key, &issuer)?;

    Ok(Issued {
        ca: ca_cert.pem(),
        core_cert: core_cert.pem(),
        core_key: core_key.serialize_pem(),
        gateway_cert: gateway_cert.pem(),
        gateway_key: gateway_key.serialize_pem(),
    })
}

pub fn run(a: CertsArgs) -> Result<()> {
    let present: Vec<&str> = FILES.into_iter().filter(|f| a.out.join(f).exists()).collect();
    if !a.force && present.len() == FILES.len() {
        println!("certificates already in {}: left as they are (--force replaces them)", a.out.display());
        return Ok(());
    }
    if !a.force && !present.is_empty() {
        bail!("{} holds only some of the certificate files ({}): give --force to replace them all", a.out.display(), present.join(", "));
    }
    let issued = issue(&a.core_sans, OffsetDateTime::now_utc(), a.days)?;
    private_fs::create_dir(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    write(&a.out, CA, &issued.ca, false)?;
    write(&a.out, CORE_CERT, &issued.core_cert, false)?;
    write(&a.out, CORE_KEY, &issued.core_key, true)?;
    write(&a.out, GATEWAY_CERT, &issued.gateway_cert, false)?;
    write(&a.out, GATEWAY_KEY, &issued.gateway_key, true)?;
    println!(
        "certificates written to {dir} (valid {days} days; core: {sans}):\n  \
         core:    --grpc-tls-cert {dir}/{CORE_CERT} --grpc-tls-key {dir}/{CORE_KEY} --grpc-client-ca {dir}/{CA}\n  \
         gateway: --core-ca {dir}/{CA} --core-client-cert {dir}/{GATEWAY_CERT} --core-client-key {dir}/{GATEWAY_KEY}",
        dir = a.out.display(),
        days = a.days,
        sans = a.core_sans.join(", "),
    );
    Ok(())
}

/// Writes one file; a private key is created 0600 before its bytes go in.
fn write(dir: &Path, name: &str, pem: &str, private: bool) -> Result<()> {
    let path = dir.join(name);
    if private {
        private_fs::create_file(&path).with_context(|| format!("creating {}", path.display()))?;
    }
    fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use rustls::{
        RootCertStore,
        client::{WebPkiServerVerifier, danger::ServerCertVerifier},
        server::WebPkiClientVerifier,
    };
    use rustls_pki_types::{CertificateDer, UnixTime, pem::PemObject};

    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    /// Core's certificate chains to the CA for exactly the SANs given, within its validity;
    /// the gateway's is a client certificate of the same CA; bad SANs are refused.
    #[test]
    fn issued_certificates_verify() {
        let now = OffsetDateTime::now_utc();
        let issued = issue(&["core.sigess.svc".into(), "10.1.2.3".into()], now, 30).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(der(&issued.ca)).unwrap();
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone()).build().unwrap();
        let at = |t: OffsetDateTime| UnixTime::since_unix_epoch(Duration::from_secs(t.unix_timestamp().try_into().unwrap()));
        let check = |name: &str, t| {
            server.verify_server_cert(&der(&issued.core_cert), &[], &ServerName::try_from(name.to_string()).unwrap(), &[], at(t))
        };
        assert!(check("core.sigess.svc", now).is_ok());
        assert!(check("10.1.2.3", now).is_ok());
        assert!(check("core.example.org", now).is_err(), "a name not given is not core's");
        assert!(check("core.sigess.svc", now + Duration::from_secs(31 * 86_400)).is_err(), "expired after --days");
        assert!(
            server
                .verify_server_cert(&der(&issued.gateway_cert), &[], &ServerName::try_from("core.sigess.svc").unwrap(), &[], at(now))
                .is_err()
        );

        let client = WebPkiClientVerifier::builder_with_provider(roots, provider).build().unwrap();
        assert!(client.verify_client_cert(&der(&issued.gateway_cert), &[], at(now)).is_ok());
        assert!(client.verify_client_cert(&der(&issued.core_cert), &[], at(now)).is_err(), "core's certificate is no client's");

        assert!(issue(&[], now, 30).is_err());
        assert!(issue(&["bad name with spaces".into()], now, 30).is_err());
    }
}
