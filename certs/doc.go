// Package certs owns the binary's TLS material and the identity it carries:
// which files make up a configuration (Files), loading them and re-reading
// them when they change on disk (Source), the *tls.Config of a server and of
// a client built on the current material (mutual TLS, TLS 1.3, certificates
// from one CA) and the same as gRPC credentials, the role and name a
// certificate names (RoleOf, FromContext, FromConnectionState), and issuing a
// CA and certificates (NewCA, Issue) for `groundskeeper tls`.
//
// It must not decide what a role may do (authorization belongs to the
// listener that asks for the peer's role: the gRPC layer, raft's stream
// layer), know any service or raft, parse flags or print. It links no
// package of this module and not raft (scripts/check.sh enforces it); of
// gRPC only the credentials and peer packages, to read a caller's
// certificate and to hand gRPC its credentials.
//
// The convention: a certificate's Subject Organizational Unit is its role,
// exactly one of admin, worker, operator, reader; its Common Name is its
// identity (an admin's raft id, a worker's id, a person's or tool's name).
// docs/security.md has the rest (file names, rotation).
package certs
