// Package web is an admin node's dashboard and JSON API over HTTP
// (`admin --http-addr`): server-rendered pages from html/template with
// embedded static files, the same data as JSON under /api/v1/, the
// operator's actions (submit, cancel, retry, pause, resume) and a
// server-sent event stream that tells pages the state changed.
//
// It owns presentation and HTTP only. Every read and every action goes
// through the node's rpc.Server methods (their validation, leader
// forwarding and capacity projection); every request is authorized by
// rpc.AuthorizeTLS against rpc.MethodRoles, the gRPC table. It must not
// read or write the replicated state behind those methods (the one
// exception is the task counts of the overview, a local read of
// fsm.State's counters), project capacity itself, decide roles of its own,
// or hold the whole task or volume list in one answer: everything is
// paged.
package web
