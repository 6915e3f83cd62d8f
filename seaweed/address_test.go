package seaweed

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, http, grpc, want string
	}{
		{in: "127.0.0.1:9333", http: "127.0.0.1:9333", grpc: "127.0.0.1:19333"},
		{in: "master:9333.19444", http: "master:9333", grpc: "master:19444"},
		{in: " 10.0.0.1:8080 ", http: "10.0.0.1:8080", grpc: "10.0.0.1:18080"},
		{in: "[::1]:8080", http: "[::1]:8080", grpc: "[::1]:18080"},
		{in: "127.0.0.1", want: "not host:port"},
		{in: ":9333", want: "not host:port"},
		{in: "host:abc", want: "not a number"},
		{in: "host:0", want: "not a number"},
		{in: "host:9333.x", want: "gRPC port"},
		{in: "host:60000", want: "+ 10000 is not a valid gRPC port"},
	} {
		a, err := ParseAddress(tc.in)
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseAddress(%q) = %v, %v; want error containing %q", tc.in, a, err, tc.want)
			}
			continue
		}
		if err != nil || a.HTTP != tc.http || a.GRPC != tc.grpc {
			t.Errorf("ParseAddress(%q) = %+v, %v; want %s / %s", tc.in, a, err, tc.http, tc.grpc)
		}
		if back, err := ParseAddress(a.String()); err != nil || back != a {
			t.Errorf("ParseAddress(%q).String() = %q does not round-trip: %+v, %v", tc.in, a.String(), back, err)
		}
	}
}

func TestNodeAddress(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id, addr string
		port     uint32
		want     Address
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", 18080, Address{"127.0.0.1:8080", "127.0.0.1:18080"}},
		{"vs1", "10.0.0.5:8080", 0, Address{"10.0.0.5:8080", "10.0.0.5:18080"}},
		{"10.0.0.5:8080", "", 19999, Address{"10.0.0.5:8080", "10.0.0.5:19999"}},
	} {
		if got := nodeAddress(tc.id, tc.addr, tc.port); got != tc.want {
			t.Errorf("nodeAddress(%q, %q, %d) = %+v, want %+v", tc.id, tc.addr, tc.port, got, tc.want)
		}
	}
}
