package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"github.com/groundskeeper-dev/groundskeeper/fsm/fsmpb"
	"github.com/groundskeeper-dev/groundskeeper/rpc/pb"
)

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	Caller caller
	Data   any
	// Types lists the task types, for the filter and the submit form.
	Types  []string
	States []string
}

var funcs = template.FuncMap{
	"typeName":  func(t fsmpb.TaskType) string { return typeName(t) },
	"stateName": func(s fsmpb.TaskState) string { return stateName(s) },
	"time": func(ns int64) string {
		if ns == 0 {
			return "–"
		}
		return time.Unix(0, ns).UTC().Format("2006-01-02 15:04:05Z")
	},
	"since": func(from, to int64) string {
		if from == 0 || to == 0 {
			return "–"
		}
		return time.Duration(to - from).Round(time.Millisecond).String()
	},
	"ago": func(ns, now int64) string {
		if ns == 0 || now == 0 {
			return "–"
		}
		return max(0, time.Duration(now-ns)).Round(100*time.Millisecond).String() + " ago"
	},
	"bytes": humanBytes,
	"pct": func(part, whole int64) float64 {
		if whole <= 0 {
			return 0
		}
		return min(100, float64(part)*100/float64(whole))
	},
	"add": func(a, b int) int { return a + b },
}

func humanBytes(v any) string {
	var n float64
	switch x := v.(type) {
	case uint64:
		n = float64(x)
	case int64:
		n = float64(x)
	default:
		return fmt.Sprint(v)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", n)
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

var pageNames = []string{"overview", "tasks", "task", "workers", "capacity", "volume", "error"}

func (h *Handler) parseTemplates() error {
	h.tmpl = map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		h.tmpl[name] = t
	}
	return nil
}

// pages registers the HTML pages; each reads what its JSON twin does.
func (h *Handler) pages() {
	show := func(path, name, title, method string, fn func(*http.Request) (any, error)) {
		h.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			c, err := h.authorize(r, method)
			if err != nil {
				h.render(w, r, http.StatusOK, "error", title, c, err)
				return
			}
			v, err := fn(r)
			if err != nil {
				h.render(w, r, http.StatusOK, "error", title, c, err)
				return
			}
			h.render(w, r, http.StatusOK, name, title, c, v)
		})
	}
	show("/{$}", "overview", "Overview", pb.Admin_Status_FullMethodName, func(r *http.Request) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.overview(ctx)
	})
	show("/tasks", "tasks", "Tasks", pb.Admin_ListTasks_FullMethodName, func(r *http.Request) (any, error) {
		q, err := parseTaskQuery(r.URL.Query())
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.tasks(ctx, q)
	})
	show("/tasks/{id}", "task", "Task", pb.Admin_GetTask_FullMethodName, func(r *http.Request) (any, error) {
		id, err := parseID(r.PathValue("id"), "task", 64)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.task(ctx, id)
	})
	show("/workers", "workers", "Workers", pb.Admin_ListWorkers_FullMethodName, func(r *http.Request) (any, error) {
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.workers(ctx)
	})
	show("/capacity", "capacity", "Capacity", pb.CapacityOracle_GetServerCapacity_FullMethodName, func(r *http.Request) (any, error) {
		size, token, err := capacityQuery(r)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.capacity(ctx, size, token)
	})
	show("/volumes/{id}", "volume", "Volume", pb.CapacityOracle_GetVolumeCapacity_FullMethodName, func(r *http.Request) (any, error) {
		id, err := parseID(r.PathValue("id"), "volume", 32)
		if err != nil {
			return nil, err
		}
		ctx, cancel := h.ctx(r)
		defer cancel()
		return h.volume(ctx, uint32(id))
	})
}

// errorPage is what the error template shows.
type errorPage struct {
	Code    int
	Message string
}

// render writes a page; an error is rendered in the error template with
// its HTTP status.
func (h *Handler) render(w http.ResponseWriter, _ *http.Request, code int, name, title string, c caller, data any) {
	if err, ok := data.(error); ok {
		ec, msg := httpStatus(err)
		code, data = ec, errorPage{Code: ec, Message: msg}
	}
	var buf bytes.Buffer
	p := page{Title: title, Nav: name, Caller: c, Data: data, Types: typeNames(), States: stateNames()}
	if err := h.tmpl[name].Execute(&buf, p); err != nil {
		h.cfg.Logger.Error("dashboard page failed to render", "page", name, "error", err)
		http.Error(w, "the page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}
