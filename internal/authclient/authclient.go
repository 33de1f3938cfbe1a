// Package authclient dials the authority with the options that every sockauth
// command shares: service key, TLS and mutual TLS.
package authclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sockauth/sockauth/authority/callerauth"
	"github.com/sockauth/sockauth/internal/serve"
)

// The flow-control windows of the connection to the authority. Fixed windows
// turn off grpc-go's bandwidth-delay estimator, which otherwise sends a
// WINDOW_UPDATE and a PING frame after a response whenever none of its PINGs
// is unanswered. The authority's messages are far below grpc-go's default
// window of 64 KiB, and these windows leave room for bursts of the revocation
// stream.
const (
	streamWindowBytes = 1 << 20
	connWindowBytes   = 4 << 20
)

// Options configures the connection to the authority.
type Options struct {
	// Address is the authority's gRPC address, host:port.
	Address string
	// ServiceKeyFile holds the bare service key to send; empty sends none.
	ServiceKeyFile string
	// TLSCA is a PEM file of the CA that signed the authority's certificate;
	// setting it (or TLS) turns TLS on.
	TLSCA string
	// TLSCert and TLSKey are the client certificate for mutual TLS.
	TLSCert string
	TLSKey  string
	// TLSServerName overrides the name checked in the authority's certificate.
	TLSServerName string
	// TLS turns TLS on with the system's CA pool when TLSCA is empty.
	TLS bool
	// FlagPrefix is the prefix of the command-line flags that set these
	// options, which AddFlags records, so that errors name the right flags.
	FlagPrefix string
}

// AddFlags registers the client flags on flags with the given flag-name
// prefix, such as "authority-" for --authority-tls-ca.
func AddFlags(flags *pflag.FlagSet, prefix string, o *Options) {
	o.FlagPrefix = prefix
	flags.StringVar(&o.ServiceKeyFile, prefix+"key-file", "", "file holding the service key sent to the authority")
	flags.BoolVar(&o.TLS, prefix+"tls", false, "connect to the authority over TLS")
	flags.StringVar(&o.TLSCA, prefix+"tls-ca", "", "PEM file of the CA of the authority's certificate (implies TLS)")
	flags.StringVar(&o.TLSCert, prefix+"tls-cert", "", "PEM client certificate for mutual TLS")
	flags.StringVar(&o.TLSKey, prefix+"tls-key", "", "PEM private key of the client certificate")
	flags.StringVar(&o.TLSServerName, prefix+"tls-server-name", "", "name expected in the authority's certificate")
}

// Dial returns a client connection with fixed flow-control windows; it
// connects lazily, on the first call. It rejects sending a service key in
// plain text to an address that is not loopback.
func Dial(o Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if o.Address == "" {
		return nil, errors.New("the authority address is empty")
	}

	useTLS := o.TLS || o.TLSCA != "" || o.TLSCert != ""
	options := []grpc.DialOption{
		grpc.WithStaticStreamWindowSize(streamWindowBytes),
		grpc.WithStaticConnWindowSize(connWindowBytes),
	}
	options = append(options, extra...)
	if useTLS {
		config, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		options = append(options, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		options = append(options, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}

	if o.ServiceKeyFile != "" {
		if !useTLS && !serve.IsLoopback(o.Address) {
			return nil, fmt.Errorf("will not send the service key in plain text to %s: turn on TLS with --%stls or --%stls-ca",
				o.Address, o.FlagPrefix, o.FlagPrefix)
		}
		key, err := callerauth.ReadServiceKey(o.ServiceKeyFile)
		if err != nil {
			return nil, err
		}
		options = append(options, grpc.WithPerRPCCredentials(key))
	}

	conn, err := grpc.NewClient(o.Address, options...)
	if err != nil {
		return nil, fmt.Errorf("invalid authority address %q: %w", o.Address, err)
	}
	return conn, nil
}

func (o Options) tlsConfig() (*tls.Config, error) {
	config := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.TLSServerName}
	if o.TLSCA != "" {
		pem, err := os.ReadFile(o.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %q contains no PEM certificate", o.TLSCA)
		}
		config.RootCAs = pool
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("a TLS client certificate needs both a certificate and a key file")
	}
	if o.TLSCert != "" {
		pair, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}
