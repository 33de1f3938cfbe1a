package adapter

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
)

// DefaultTrustedProxies are the networks that Config.TrustedProxies means
// when it is nil: the loopback networks, from which a reverse proxy on the
// same host connects.
var DefaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
}

// ClientAddress returns the IP address of the client of a connection, for
// the per-address limit, given the address of the connection's TCP peer
// (host:port or a bare IP address) and the headers of its HTTP request.
//
// When the peer is in Config.TrustedProxies, it is a reverse proxy, and the
// client is the rightmost address of the X-Forwarded-For headers that is not
// itself a trusted proxy. Proxies append the address of their own peer to
// that header, so the entries right of the first untrusted one were written
// by trusted proxies, and the entries left of it are whatever the client
// sent. When the header is missing, or an entry is not an IP address, the
// nearest address known to be genuine is returned: the peer itself or the
// entry right of the bad one.
//
// It returns "" when remoteAddr is not an IP address. IPv4 addresses mapped
// into IPv6 are returned as IPv4, and zones are dropped, so that one client
// has one spelling.
func (f *Flow) ClientAddress(remoteAddr string, header http.Header) string {
	return clientAddress(remoteAddr, header, f.cfg.TrustedProxies)
}

// clientAddress is ClientAddress with the trusted networks as an argument.
func clientAddress(remoteAddr string, header http.Header, trusted []netip.Prefix) string {
	peer, ok := parseAddress(remoteAddr)
	if !ok {
		return ""
	}
	if !isTrusted(peer, trusted) {
		return peer.String()
	}

	client := peer
	entries := forwardedFor(header)
	for i := len(entries) - 1; i >= 0; i-- {
		hop, ok := parseAddress(entries[i])
		if !ok {
			break
		}
		client = hop
		if !isTrusted(hop, trusted) {
			break
		}
	}
	return client.String()
}

// forwardedFor returns the entries of every X-Forwarded-For header of
// header, in order, with the spaces around them removed.
func forwardedFor(header http.Header) []string {
	var entries []string
	for _, value := range header.Values("X-Forwarded-For") {
		for entry := range strings.SplitSeq(value, ",") {
			entries = append(entries, strings.TrimSpace(entry))
		}
	}
	return entries
}

// parseAddress parses an IP address that may carry a port, as in
// "192.0.2.1:443" or "[2001:db8::1]:443", or brackets without a port.
func parseAddress(s string) (netip.Addr, bool) {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	} else if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

// isTrusted reports whether addr is in one of the networks.
func isTrusted(addr netip.Addr, networks []netip.Prefix) bool {
	return slices.ContainsFunc(networks, func(network netip.Prefix) bool { return network.Contains(addr) })
}

// trustedProxiesWithDefault returns networks with their host bits cleared,
// DefaultTrustedProxies when networks is nil, or an error for a network
// that is not valid.
func trustedProxiesWithDefault(networks []netip.Prefix) ([]netip.Prefix, error) {
	if networks == nil {
		return slices.Clone(DefaultTrustedProxies), nil
	}
	masked := make([]netip.Prefix, len(networks))
	for i, network := range networks {
		if !network.IsValid() {
			return nil, fmt.Errorf("adapter: invalid Config.TrustedProxies entry %d %q: expected a network such as 10.0.0.0/8", i, network)
		}
		// Client addresses are compared after unmapping, so a network of
		// IPv4 addresses mapped into IPv6 becomes the IPv4 network.
		if network.Addr().Is4In6() {
			if network.Bits() < 96 {
				return nil, fmt.Errorf("adapter: invalid Config.TrustedProxies entry %d %q: a network of IPv4-mapped addresses needs a prefix of at least 96 bits; list IPv4 networks as such, such as 10.0.0.0/8", i, network)
			}
			network = netip.PrefixFrom(network.Addr().Unmap(), network.Bits()-96)
		}
		masked[i] = network.Masked()
	}
	return masked, nil
}
