// Package rpc serves groundskeeper's gRPC API: the operator
// Admin service and the node-to-node Internal service, plus the clients that
// call them. Writes that reach a follower are forwarded to the leader;
// linearizable reads are served by the leader after it confirms leadership.
//
// It holds no business logic: validation of requests and translation between
// the API and fsm commands only. Generated code lives in rpc/pb.
package rpc
