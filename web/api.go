package web

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// routes registers the JSON API and the pages. Each route names the gRPC
// method whose role it needs (rpc.MethodRoles).
func (h *Handler) routes() {
	get := func(path, method string, fn func(*http.Request) (any, error)) {
		h.mux.HandleFunc("GET /api/v1/"+path, h.api(method, fn))
	}
	get("overview", pb.Admin_Status_FullMethodName, func(r *http.Request) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.overview(ctx)
	})
	get("tasks", pb.Admin_ListTasks_FullMethodName, func(r *http.Request) (any, error) {
		q, err := parseTaskQuery(r.URL.Query())
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.tasks(ctx, q)
	})
	get("tasks/{id}", pb.Admin_GetTask_FullMethodName, func(r *http.Request) (any, error) {
		id, err := parseID(r.PathValue("id"), "task", 64)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.task(ctx, id)
	})
	get("workers", pb.Admin_ListWorkers_FullMethodName, func(r *http.Request) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.workers(ctx)
	})
	get("capacity", pb.CapacityOracle_GetServerCapacity_FullMethodName, func(r *http.Request) (any, error) {
		size, token, err := capacityQuery(r)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.capacity(ctx, size, token)
	})
	get("volumes/{id}", pb.CapacityOracle_GetVolumeCapacity_FullMethodName, func(r *http.Request) (any, error) {
		id, err := parseID(r.PathValue("id"), "volume", 32)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.volume(ctx, uint32(id))
	})
	h.mux.HandleFunc("GET /api/v1/events", h.eventStream)
	h.actions()
	h.pages()
	h.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no API endpoint %s %s: see the README's table of /api/v1 endpoints", r.Method, r.URL.Path)})
	})
}

func capacityQuery(r *http.Request) (int, string, error) {
	for k := range r.URL.Query() {
		if k != "page_size" && k != "page_token" {
			return 0, "", badRequest(fmt.Sprintf("unknown query parameter %q: use page_size or page_token", k))
		}
	}
	size, err := parsePageSize(r.URL.Query().Get("page_size"))
	return size, r.URL.Query().Get("page_token"), err
}

// api serves one JSON read after authorizing it.
func (h *Handler) api(method string, fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.authorize(r, method); err != nil {
			writeErr(w, err)
			return
		}
		v, err := fn(r)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// maxBody bounds an action's JSON body.
const maxBody = 64 << 10

// actions registers the operator's POSTs. Each takes a JSON body (an
// empty one is {}): requiring application/json keeps a cross-site HTML
// form, which cannot send it, from acting with the browser's certificate.
func (h *Handler) actions() {
	post := func(path, method string, body func() any, fn func(*http.Request, any) (any, error)) {
		h.mux.HandleFunc("POST /api/v1/"+path, func(w http.ResponseWriter, r *http.Request) {
			if _, err := h.authorize(r, method); err != nil {
				writeErr(w, err)
				return
			}
			b := body()
			if err := decodeBody(r, b); err != nil {
				writeErr(w, err)
				return
			}
			v, err := fn(r, b)
			if err != nil {
				writeErr(w, err)
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	post("tasks", pb.Admin_SubmitTask_FullMethodName, func() any { return &submitBody{} }, func(r *http.Request, b any) (any, error) {
		req, err := b.(*submitBody).request()
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		resp, err := h.cfg.API.SubmitTask(ctx, req)
		if err != nil {
			return nil, err
		}
		return PB[*pb.SubmitTaskResponse]{resp}, nil
	})
	post("tasks/{id}/cancel", pb.Admin_CancelTask_FullMethodName, func() any { return &reasonBody{} }, func(r *http.Request, b any) (any, error) {
		id, err := parseID(r.PathValue("id"), "task", 64)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		resp, err := h.cfg.API.CancelTask(ctx, &pb.CancelTaskRequest{Id: id, Reason: b.(*reasonBody).Reason})
		if err != nil {
			return nil, err
		}
		return PB[*pb.CancelTaskResponse]{resp}, nil
	})
	post("tasks/{id}/retry", pb.Admin_RetryTask_FullMethodName, func() any { return &struct{}{} }, func(r *http.Request, _ any) (any, error) {
		id, err := parseID(r.PathValue("id"), "task", 64)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		resp, err := h.cfg.API.RetryTask(ctx, &pb.RetryTaskRequest{Id: id})
		if err != nil {
			return nil, err
		}
		return PB[*pb.RetryTaskResponse]{resp}, nil
	})
	post("pause", pb.Admin_Pause_FullMethodName, func() any { return &reasonBody{} }, func(r *http.Request, b any) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		resp, err := h.cfg.API.Pause(ctx, &pb.PauseRequest{Reason: b.(*reasonBody).Reason})
		if err != nil {
			return nil, err
		}
		return PB[*pb.PauseResponse]{resp}, nil
	})
	post("resume", pb.Admin_Resume_FullMethodName, func() any { return &struct{}{} }, func(r *http.Request, _ any) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		resp, err := h.cfg.API.Resume(ctx, &pb.ResumeRequest{})
		if err != nil {
			return nil, err
		}
		return PB[*pb.ResumeResponse]{resp}, nil
	})
}

type reasonBody struct {
	Reason string `json:"reason"`
}

type submitBody struct {
	Type       string `json:"type"`
	VolumeID   uint32 `json:"volume_id"`
	Collection string `json:"collection"`
	Source     string `json:"source"`
	Target     string `json:"target"`
	Priority   int32  `json:"priority"`
}

func (b *submitBody) request() (*pb.SubmitTaskRequest, error) {
	t, ok := parseType(b.Type)
	if !ok {
		return nil, badRequest(fmt.Sprintf("unknown task type %q: use one of the types listed by the tasks page's filter", b.Type))
	}
	return &pb.SubmitTaskRequest{Type: t, VolumeId: b.VolumeID, Collection: b.Collection, Source: b.Source, Target: b.Target, Priority: b.Priority}, nil
}

// decodeBody reads an action's JSON body into v; an empty body is {}.
func decodeBody(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return badRequest("an action's body must be JSON with Content-Type: application/json")
		}
	} else {
		return badRequest("an action's body must be JSON with Content-Type: application/json")
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return badRequest(fmt.Sprintf("the body is not the JSON this action takes: %v", err))
	}
	return nil
}
