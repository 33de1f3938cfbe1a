package badgerstore

import (
	"strings"
	"testing"
)

func TestParseTableMappings(t *testing.T) {
	const dir = "/var/lib/sock auth"
	maps := strings.Join([]string{
		"7f0000000000-7f0000100000 rw-s 00000000 08:01 1201 /var/lib/sock auth/000007.sst",
		"7f0000200000-7f0000300000 r--s 00000000 08:01 1202                     /var/lib/sock auth/000012.sst",
		"7f0000300000-7f0000400000 rw-s 00000000 08:01 1203 /var/lib/sock auth/000008.sst (deleted)",
		"7f0000400000-7f0000500000 rw-p 00000000 08:01 1204 /var/lib/sock auth/000009.sst",
		"7f0000500000-7f0000600000 rw-s 00001000 08:01 1205 /var/lib/sock auth/000010.sst",
		"7f0000600000-7f0000700000 rw-s 00000000 08:01 1206 /var/lib/sock auth/000001.vlog",
		"7f0000700000-7f0000800000 rw-s 00000000 08:01 1207 /var/lib/other/000011.sst",
		"7f0000800000-7f0000900000 rw-s 00000000 08:01 1208 /var/lib/sock auth/-13.sst",
		"7f0000900000-7f0000a00000 rw-s 00000000 08:01 1209 /var/lib/sock auth/.sst",
		"7f0000a00000-7f0000b00000 rw-p 00000000 00:00 0 ",
		"7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]",
	}, "\n")

	mappings, err := parseTableMappings(strings.NewReader(maps), dir)
	if err != nil {
		t.Fatalf("parseTableMappings: %v", err)
	}
	expected := []tableMapping{
		{start: 0x7f0000000000, end: 0x7f0000100000, id: 7},
		{start: 0x7f0000200000, end: 0x7f0000300000, id: 12},
	}
	if len(mappings) != len(expected) {
		t.Fatalf("parsed %d mappings %+v, expected %+v", len(mappings), mappings, expected)
	}
	for i := range expected {
		if mappings[i] != expected[i] {
			t.Errorf("mapping %d is %+v, expected %+v", i, mappings[i], expected[i])
		}
	}
}

func TestParseTableMappingsRejectsBadRange(t *testing.T) {
	for _, line := range []string{
		"7f0000000000 rw-s 00000000 08:01 1201 /data/000007.sst",
		"7f00000zz000-7f0000100000 rw-s 00000000 08:01 1201 /data/000007.sst",
		"7f0000100000-7f0000100000 rw-s 00000000 08:01 1201 /data/000007.sst",
	} {
		if _, err := parseTableMappings(strings.NewReader(line), "/data"); err == nil {
			t.Errorf("parseTableMappings(%q) returned no error", line)
		}
	}
}

func TestTableFileID(t *testing.T) {
	cases := map[string]struct {
		id uint64
		ok bool
	}{
		"000007.sst":    {7, true},
		"123456789.sst": {123456789, true},
		"-7.sst":        {0, false},
		"+7.sst":        {0, false},
		".sst":          {0, false},
		"000007.vlog":   {0, false},
		"7.sst.tmp":     {0, false},
	}
	for name, expected := range cases {
		id, ok := tableFileID(name)
		if id != expected.id || ok != expected.ok {
			t.Errorf("tableFileID(%q) = %d, %v, expected %d, %v", name, id, ok, expected.id, expected.ok)
		}
	}
}
