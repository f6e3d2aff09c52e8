// Package mmdbtest writes small MaxMind DB (mmdb) files on the fly, for tests
// of code that reads GeoIP2/GeoLite2 databases. It is test support only:
// production code must not import it.
package mmdbtest

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Database types written by WriteCountryDB and WriteASNDB, as stored in the
// mmdb metadata (database_type).
const (
	CountryDatabaseType = "GeoIP2-Country"
	ASNDatabaseType     = "GeoLite2-ASN"
)

// WriteCountryDB writes a GeoIP2-Country-shaped mmdb mapping each CIDR to an
// ISO country code and returns its path (under dir).
//
// Each record carries country and registered_country, both with iso_code and
// English names, like MaxMind's files. Keys are CIDRs ("192.0.2.0/24",
// "2001:db8::/32") or single addresses; IPv4 networks are also reachable
// through their IPv4-mapped IPv6 form. Reserved networks (10/8, 127/8,
// 192.168/16, documentation ranges, …) may be used. When networks overlap,
// the more specific one wins.
func WriteCountryDB(dir string, entries map[string]string) (string, error) {
	records := make(map[string]map[string]any, len(entries))
	for network, code := range entries {
		country := map[string]any{
			"iso_code": code,
			"names":    map[string]any{"en": "Country " + code},
		}
		records[network] = map[string]any{
			"country":            country,
			"registered_country": country,
		}
	}
	return WriteDB(dir, CountryDatabaseType, records)
}

// WriteASNDB writes a GeoLite2-ASN-shaped mmdb mapping each CIDR to an AS
// number (autonomous_system_number, with an autonomous_system_organization)
// and returns its path (under dir). Networks follow the rules of
// WriteCountryDB.
func WriteASNDB(dir string, entries map[string]uint32) (string, error) {
	records := make(map[string]map[string]any, len(entries))
	for network, asn := range entries {
		records[network] = map[string]any{
			"autonomous_system_number":       asn,
			"autonomous_system_organization": fmt.Sprintf("Test AS%d", asn),
		}
	}
	return WriteDB(dir, ASNDatabaseType, records)
}

// WriteDB writes an mmdb whose metadata says databaseType, mapping each CIDR
// to a record, and returns its path (under dir). Records are built from plain
// Go values: map[string]any, []any, string, bool, uint16, uint32, uint64,
// int (stored as uint32 when non-negative, else int32), int32, float32 and
// float64. It is the building block of WriteCountryDB and WriteASNDB, for
// tests that need other shapes (e.g. a record with only registered_country).
func WriteDB(dir, databaseType string, records map[string]map[string]any) (string, error) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            databaseType,
		Description:             map[string]string{"en": "mmdbtest " + databaseType},
		Languages:               []string{"en"},
		IPVersion:               6, // IPv6 tree with IPv4 aliasing: both families work
		RecordSize:              24,
		IncludeReservedNetworks: true, // allow 10/8, 127/8, 192.168/16, 2001:db8::/32 …
	})
	if err != nil {
		return "", fmt.Errorf("mmdbtest: %w", err)
	}

	type entry struct {
		prefix netip.Prefix
		key    string
	}
	list := make([]entry, 0, len(records))
	for key := range records {
		prefix, err := parseNetwork(key)
		if err != nil {
			return "", err
		}
		list = append(list, entry{prefix, key})
	}
	// Insert less specific networks first so that more specific ones
	// replace them where they overlap; map order must not matter.
	slices.SortFunc(list, func(a, b entry) int {
		if c := cmp.Compare(prefixBits128(a.prefix), prefixBits128(b.prefix)); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	for _, e := range list {
		value, err := toDataType(records[e.key])
		if err != nil {
			return "", fmt.Errorf("mmdbtest: record for %s: %w", e.key, err)
		}
		addr := e.prefix.Addr()
		ipnet := &net.IPNet{
			IP:   addr.AsSlice(),
			Mask: net.CIDRMask(e.prefix.Bits(), addr.BitLen()),
		}
		if err := tree.Insert(ipnet, value); err != nil {
			return "", fmt.Errorf("mmdbtest: inserting %s: %w", e.key, err)
		}
	}

	f, err := os.CreateTemp(dir, databaseType+"-*.mmdb")
	if err != nil {
		return "", fmt.Errorf("mmdbtest: %w", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("mmdbtest: writing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("mmdbtest: writing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}

// parseNetwork accepts a CIDR or a single address and returns the masked
// prefix.
func parseNetwork(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("mmdbtest: network %q: %w", s, err)
		}
		addr = addr.WithZone("")
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	prefix, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("mmdbtest: network %q: %w", s, err)
	}
	return prefix.Masked(), nil
}

// prefixBits128 is the prefix length in the IPv6 tree, where IPv4 networks
// sit under ::/96.
func prefixBits128(p netip.Prefix) int {
	if p.Addr().Is4() {
		return p.Bits() + 96
	}
	return p.Bits()
}

func toDataType(v any) (mmdbtype.DataType, error) {
	switch v := v.(type) {
	case map[string]any:
		m := make(mmdbtype.Map, len(v))
		for k, e := range v {
			d, err := toDataType(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			m[mmdbtype.String(k)] = d
		}
		return m, nil
	case map[string]string:
		m := make(mmdbtype.Map, len(v))
		for k, e := range v {
			m[mmdbtype.String(k)] = mmdbtype.String(e)
		}
		return m, nil
	case []any:
		s := make(mmdbtype.Slice, len(v))
		for i, e := range v {
			d, err := toDataType(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s[i] = d
		}
		return s, nil
	case string:
		return mmdbtype.String(v), nil
	case bool:
		return mmdbtype.Bool(v), nil
	case uint16:
		return mmdbtype.Uint16(v), nil
	case uint32:
		return mmdbtype.Uint32(v), nil
	case uint64:
		return mmdbtype.Uint64(v), nil
	case int:
		if v >= 0 && uint64(v) <= 0xFFFFFFFF {
			return mmdbtype.Uint32(uint32(v)), nil
		}
		if int64(v) >= -1<<31 && int64(v) < 1<<31 {
			return mmdbtype.Int32(int32(v)), nil
		}
		return nil, fmt.Errorf("int %d out of range", v)
	case int32:
		return mmdbtype.Int32(v), nil
	case float32:
		return mmdbtype.Float32(v), nil
	case float64:
		return mmdbtype.Float64(v), nil
	case mmdbtype.DataType:
		return v, nil
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}
