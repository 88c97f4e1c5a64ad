//! The address ranges that are not public unicast, and the check that names them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A range of addresses that is not public unicast, as [`non_public_range`] names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressRange {
    /// `0.0.0.0/8` ("this network") or `::`.
    Unspecified,
    /// `127.0.0.0/8` or `::1`.
    Loopback,
    /// `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, or IPv6 site-local `fec0::/10`.
    Private,
    /// `100.64.0.0/10`, shared by carrier-grade NATs.
    SharedCgnat,
    /// `169.254.0.0/16` or `fe80::/10`.
    LinkLocal,
    /// A cloud provider's instance metadata service: `169.254.169.254`, AWS's
    /// `169.254.170.2` and `fd00:ec2::254`, Alibaba's `100.100.100.200`.
    CloudMetadata,
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4` or `ff00::/8`.
    Multicast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` or `2001:2::/48`.
    Benchmarking,
    /// Reserved or special-purpose space: `240.0.0.0/4`, `192.0.0.0/24`, `192.88.99.0/24`,
    /// the discard prefix `100::/64`, `2001::/23` (Teredo included), and IPv6 outside the
    /// global unicast `2000::/3`.
    Reserved,
    /// `fc00::/7`.
    UniqueLocal,
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressRange::Unspecified => "an unspecified (\"this network\") address",
            AddressRange::Loopback => "a loopback address",
            AddressRange::Private => "a private-use address",
            AddressRange::SharedCgnat => "a shared (carrier-grade NAT) address",
            AddressRange::LinkLocal => "a link-local address",
            AddressRange::CloudMetadata => "the cloud metadata service",
            AddressRange::Broadcast => "the broadcast address",
            AddressRange::Multicast => "a multicast address",
            AddressRange::Documentation => "an address reserved for documentation",
            AddressRange::Benchmarking => "an address reserved for benchmarking",
            AddressRange::Reserved => "a reserved address",
            AddressRange::UniqueLocal => "a unique-local address",
        })
    }
}

/// The public-address check: `None` if `address` is public unicast, otherwise the
/// non-public range it is in.
///
/// IPv6 addresses that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4
/// `2002::/16`, Teredo `2001::/32`) are classified by the IPv4 address they reach, so
/// `::ffff:127.0.0.1` is loopback. Deprecated and local-use forms are never public.
///
/// ```
/// use biot_notifications::{non_public_range, AddressRange};
///
/// assert_eq!(non_public_range("8.8.8.8".parse().expect("an address")), None);
/// assert_eq!(
///     non_public_range("::ffff:10.1.2.3".parse().expect("an address")),
///     Some(AddressRange::Private)
/// );
/// ```
pub fn non_public_range(address: IpAddr) -> Option<AddressRange> {
    match address {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(address: Ipv4Addr) -> Option<AddressRange> {
    use AddressRange::*;
    // Specific addresses come before the ranges that contain them.
    let range = match address.octets() {
        [0, ..] => Unspecified,
        [127, ..] => Loopback,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Private,
        [100, 100, 100, 200] => CloudMetadata,
        [100, 64..=127, ..] => SharedCgnat,
        [169, 254, 169, 254] | [169, 254, 170, 2] => CloudMetadata,
        [169, 254, ..] => LinkLocal,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Documentation,
        [198, 18..=19, ..] => Benchmarking,
        // IETF protocol assignments, and the retired 6to4 relay anycast.
        [192, 0, 0, _] | [192, 88, 99, _] => Reserved,
        [255, 255, 255, 255] => Broadcast,
        [224..=239, ..] => Multicast,
        [240..=255, ..] => Reserved,
        _ => return None,
    };
    Some(range)
}

/// Whether `bits` lies in the prefix `prefix/len` (`len` in 1..=128).
fn in_prefix(bits: u128, prefix: Ipv6Addr, len: u32) -> bool {
    (bits ^ prefix.to_bits())
        .checked_shr(128 - len)
        .unwrap_or(0)
        == 0
}

fn non_public_v6(address: Ipv6Addr) -> Option<AddressRange> {
    use AddressRange::*;
    const AWS_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

    let bits = address.to_bits();
    // Truncation intended: these pick the 32 bits an embedding puts the IPv4 address in.
    let low_v4 = Ipv4Addr::from(bits as u32);
    let six_to_four_v4 = Ipv4Addr::from((bits >> 80) as u32);
    let prefix =
        |[a, b, c]: [u16; 3], len| in_prefix(bits, Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0), len);

    let range = if address.is_unspecified() {
        Unspecified
    } else if address.is_loopback() {
        Loopback
    } else if let Some(v4) = address.to_ipv4_mapped() {
        return non_public_v4(v4);
    } else if bits >> 32 == 0 {
        // IPv4-compatible, deprecated since 2006: never public, whatever it embeds.
        non_public_v4(low_v4).unwrap_or(Reserved)
    } else if prefix([0x64, 0xff9b, 0], 96) {
        // The well-known NAT64 prefix reaches the embedded address, public or not.
        return non_public_v4(low_v4);
    } else if prefix([0x64, 0xff9b, 1], 48) {
        // 64:ff9b:1::/48 is for local use only.
        non_public_v4(low_v4).unwrap_or(Reserved)
    } else if prefix([0x100, 0, 0], 64) {
        Reserved
    } else if prefix([0x2001, 0, 0], 32) {
        // Teredo stores the client's IPv4 address inverted in the low 32 bits.
        non_public_v4(Ipv4Addr::from(!(bits as u32))).unwrap_or(Reserved)
    } else if prefix([0x2001, 2, 0], 48) {
        Benchmarking
    } else if prefix([0x2001, 0, 0], 23) {
        Reserved
    } else if prefix([0x2001, 0xdb8, 0], 32) || prefix([0x3fff, 0, 0], 20) {
        Documentation
    } else if prefix([0x2002, 0, 0], 16) {
        // 6to4 reaches the IPv4 address in bits 16..48.
        return non_public_v4(six_to_four_v4);
    } else if address == AWS_METADATA {
        CloudMetadata
    } else if prefix([0xfc00, 0, 0], 7) {
        UniqueLocal
    } else if prefix([0xfe80, 0, 0], 10) {
        LinkLocal
    } else if prefix([0xfec0, 0, 0], 10) {
        Private
    } else if prefix([0xff00, 0, 0], 8) {
        Multicast
    } else if !prefix([0x2000, 0, 0], 3) {
        // Only 2000::/3 is allocated for global unicast.
        Reserved
    } else {
        return None;
    };
    Some(range)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("a valid IPv6 address in the test")
    }

    #[test]
    fn embedded_ipv4_addresses_are_classified_by_what_they_reach() {
        let cases = [
            ("::ffff:8.8.8.8", None),
            ("::ffff:169.254.169.254", Some(AddressRange::CloudMetadata)),
            ("::8.8.8.8", Some(AddressRange::Reserved)),
            ("::10.0.0.1", Some(AddressRange::Private)),
            ("64:ff9b::808:808", None),
            ("64:ff9b::a00:1", Some(AddressRange::Private)),
            ("64:ff9b:1::808:808", Some(AddressRange::Reserved)),
            ("64:ff9b:1::7f00:1", Some(AddressRange::Loopback)),
            ("2002:808:808::1", None),
            ("2002:c0a8:101::1", Some(AddressRange::Private)),
            // Teredo client 127.0.0.1, inverted: 0x80ff_fffe.
            (
                "2001:0:4136:e378:8000:63bf:80ff:fffe",
                Some(AddressRange::Loopback),
            ),
            (
                "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
                Some(AddressRange::Reserved),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(non_public_v6(v6(text)), expected, "{text}");
        }
    }

    #[test]
    fn ipv6_outside_global_unicast_is_reserved() {
        assert_eq!(non_public_v6(v6("4000::1")), Some(AddressRange::Reserved));
        assert_eq!(non_public_v6(v6("100::1")), Some(AddressRange::Reserved));
        assert_eq!(
            non_public_v6(v6("2001:2::1")),
            Some(AddressRange::Benchmarking)
        );
        assert_eq!(
            non_public_v6(v6("2001:1f0::1")),
            Some(AddressRange::Reserved)
        );
        assert_eq!(non_public_v6(v6("2001:200::1")), None);
        assert_eq!(
            non_public_v6(v6("3fff::1")),
            Some(AddressRange::Documentation)
        );
        assert_eq!(non_public_v6(v6("fec0::1")), Some(AddressRange::Private));
    }
}
