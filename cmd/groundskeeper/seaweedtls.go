package main

import (
	"flag"

	"github.com/hashicorp/go-hclog"

	"github.com/groundskeeper-dev/groundskeeper/seaweed"
)

// seaweedSecurity is --seaweedfs-security: the SeaweedFS security.toml
// whose [grpc] section says how to reach the masters and volume servers
// (found where weed finds it when not given).
type seaweedSecurity struct{ file string }

func (s *seaweedSecurity) register(fs *flag.FlagSet) {
	fs.StringVar(&s.file, "seaweedfs-security", "", "SeaweedFS security.toml for gRPC mutual TLS to the masters and volume servers (default: the first security.toml in ., $HOME/.seaweedfs, /usr/local/etc/seaweedfs, /etc/seaweedfs, with WEED_* overrides, as weed reads it; none found: plaintext)")
}

// load reads the file as component (seaweed.ComponentAdmin,
// ComponentWorker) and logs how SeaweedFS will be reached.
func (s *seaweedSecurity) load(logger hclog.Logger, component string) (*seaweed.Security, error) {
	log := logger.Named("seaweedfs-tls")
	sec, err := seaweed.LoadSecurity(seaweed.SecurityOptions{File: s.file, Component: component,
		Report: func(err error) { reportTLS(log, err) }})
	if err != nil {
		return nil, err
	}
	log.Info("SeaweedFS gRPC: " + sec.String())
	return sec, nil
}
