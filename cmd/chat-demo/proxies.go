package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// prefixesFlag is a flag of comma-separated networks, such as
// "10.0.0.0/8,fd00::/8". The first use replaces the default, and later uses
// add to it. An empty value leaves the list empty.
type prefixesFlag struct {
	prefixes *[]netip.Prefix
	set      bool
}

func (f *prefixesFlag) String() string {
	if f.prefixes == nil {
		return ""
	}
	parts := make([]string, len(*f.prefixes))
	for i, p := range *f.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

func (f *prefixesFlag) Set(value string) error {
	parsed := []netip.Prefix{}
	for part := range strings.SplitSeq(value, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(part)
		if err != nil {
			if addr, addrErr := netip.ParseAddr(part); addrErr == nil {
				prefix = netip.PrefixFrom(addr, addr.BitLen())
			} else {
				return fmt.Errorf("invalid network %q: expected a network such as 10.0.0.0/8 or an IP address", part)
			}
		}
		parsed = append(parsed, prefix.Masked())
	}
	if f.set {
		parsed = append(*f.prefixes, parsed...)
	}
	*f.prefixes, f.set = parsed, true
	return nil
}

func (f *prefixesFlag) Type() string { return "networks" }
