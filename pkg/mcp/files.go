package mcp

import (
	"context"
	"encoding/base64"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/agentkernel/kubectl-agentkernel/pkg/sandbox"
	"github.com/agentkernel/kubectl-agentkernel/pkg/transfer"
)

// sandboxPath cleans a path an agent gave for a sandbox file: absolute, or
// relative to /workspace.
func sandboxPath(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", fmt.Errorf("a path is required (relative paths start at %s)", sandbox.WorkspaceDir)
	}
	clean, err := transfer.CleanRemotePath(p)
	if err != nil {
		return "", err
	}
	if clean != "/" {
		clean = strings.TrimSuffix(clean, "/")
	}
	return clean, nil
}

// WriteFileInput is a file to write.
type WriteFileInput struct {
	Sandbox  string `json:"sandbox" jsonschema:"name of the sandbox"`
	Path     string `json:"path" jsonschema:"file to write (relative paths start at /workspace); parent directories are created"`
	Content  string `json:"content" jsonschema:"the file's content"`
	Encoding string `json:"encoding,omitempty" jsonschema:"text (default) or base64 (content is base64 of the bytes)"`
	Append   bool   `json:"append,omitempty" jsonschema:"add to the end of the file instead of replacing it"`
	Mode     string `json:"mode,omitempty" jsonschema:"octal permissions to set, e.g. 0755"`
}

// WriteFileOutput confirms a write.
type WriteFileOutput struct {
	Path    string `json:"path"`
	Bytes   int    `json:"bytes" jsonschema:"bytes written"`
	Resumed string `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

func (s *Server) writeFile(ctx context.Context, in WriteFileInput) (WriteFileOutput, error) {
	p, err := sandboxPath(in.Path)
	if err != nil {
		return WriteFileOutput{}, err
	}
	content, err := decode(in.Content, in.Encoding)
	if err != nil {
		return WriteFileOutput{}, err
	}
	var mode uint64
	if in.Mode != "" {
		if mode, err = strconv.ParseUint(in.Mode, 8, 32); err != nil || mode == 0 || mode > 0o7777 {
			return WriteFileOutput{}, fmt.Errorf("mode %q is not octal permissions such as 0644 or 0755", in.Mode)
		}
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return WriteFileOutput{}, err
	}
	if err := transfer.WriteFile(ctx, t.run, p, strings.NewReader(string(content)), transfer.WriteOptions{Append: in.Append, Mode: uint32(mode)}); err != nil {
		return WriteFileOutput{}, err
	}
	return WriteFileOutput{Path: p, Bytes: len(content), Resumed: resumed}, nil
}

func decode(content, encoding string) ([]byte, error) {
	switch encoding {
	case "", encodingText:
		return []byte(content), nil
	case encodingBase64:
		b, err := base64.StdEncoding.DecodeString(content)
		if err != nil {
			return nil, fmt.Errorf("content is not valid base64: %v", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("unknown encoding %q: use text or base64", encoding)
}

// ReadFileInput is a slice of a file to read.
type ReadFileInput struct {
	Sandbox  string `json:"sandbox" jsonschema:"name of the sandbox"`
	Path     string `json:"path" jsonschema:"file to read (relative paths start at /workspace)"`
	Encoding string `json:"encoding,omitempty" jsonschema:"text (default: control characters and invalid UTF-8 become '?') or base64 (the exact bytes)"`
	Offset   int64  `json:"offset,omitempty" jsonschema:"first byte to read (default 0); use it to read on after a truncated answer"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"read at most this many bytes (default and most: the server's output limit)"`
}

// ReadFileOutput is what was read.
type ReadFileOutput struct {
	Path      string `json:"path"`
	Encoding  string `json:"encoding"`
	Content   string `json:"content"`
	Offset    int64  `json:"offset"`
	Bytes     int    `json:"bytes" jsonschema:"bytes of the file this answer covers"`
	Truncated bool   `json:"truncated" jsonschema:"the file goes on: read again with offset = offset + bytes"`
	Altered   bool   `json:"altered,omitempty" jsonschema:"text mode replaced bytes that were not printable UTF-8; read with encoding base64 for the exact bytes"`
	Resumed   string `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

// readArgs checks what a read of untrusted output asks for: its encoding
// (text when empty) and max_bytes, and gives the bytes it may read.
func (s *Server) readArgs(encoding string, maxBytes int) (string, int, error) {
	switch encoding {
	case "":
		encoding = encodingText
	case encodingText, encodingBase64:
	default:
		return "", 0, fmt.Errorf("unknown encoding %q: use text or base64", encoding)
	}
	if maxBytes < 0 {
		return "", 0, fmt.Errorf("max_bytes must not be negative")
	}
	limit := s.o.Limits.OutputBytes
	if maxBytes > 0 && maxBytes < limit {
		limit = maxBytes
	}
	return encoding, limit, nil
}

func (s *Server) readFile(ctx context.Context, in ReadFileInput) (ReadFileOutput, error) {
	p, err := sandboxPath(in.Path)
	if err != nil {
		return ReadFileOutput{}, err
	}
	if in.Offset < 0 {
		return ReadFileOutput{}, fmt.Errorf("offset must not be negative")
	}
	encoding, limit, err := s.readArgs(in.Encoding, in.MaxBytes)
	if err != nil {
		return ReadFileOutput{}, err
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return ReadFileOutput{}, err
	}
	data, more, err := transfer.ReadFile(ctx, t.run, p, in.Offset, int64(limit))
	if err != nil {
		return ReadFileOutput{}, err
	}
	out := ReadFileOutput{Path: p, Encoding: encoding, Offset: in.Offset, Truncated: more, Resumed: resumed}
	if encoding == encodingBase64 {
		out.Content, out.Bytes = base64.StdEncoding.EncodeToString(data), len(data)
		return out, nil
	}
	if more {
		data = trimPartialRune(data) // the next read starts at the cut character
	}
	out.Bytes = len(data)
	out.Altered = !isCleanText(data)
	out.Content = cleanText(data)
	if more {
		out.Content += truncationMarker(int64(len(data)), -1)
	}
	return out, nil
}

// ListDirInput is a directory to list.
type ListDirInput struct {
	Sandbox    string `json:"sandbox" jsonschema:"name of the sandbox"`
	Path       string `json:"path,omitempty" jsonschema:"directory to list (default /workspace; relative paths start there)"`
	MaxEntries int    `json:"max_entries,omitempty" jsonschema:"list at most this many entries (default and most: the server's limit)"`
}

// ListDirOutput is a directory's entries.
type ListDirOutput struct {
	Path      string     `json:"path"`
	Entries   []DirEntry `json:"entries"`
	Truncated bool       `json:"truncated" jsonschema:"the directory has more entries than are listed"`
	Resumed   string     `json:"resumed,omitempty" jsonschema:"the sandbox was suspended and this call resumed it first: since when and why"`
}

// DirEntry is one entry of a sandbox directory.
type DirEntry struct {
	Name string `json:"name"`
	// NameAltered: the sandbox's name was not printable UTF-8; Name shows
	// it with '?' in place of the rest, and is not a name to use.
	NameAltered bool   `json:"name_altered,omitempty" jsonschema:"the real name holds control characters or invalid UTF-8, shown as '?'; it cannot be used as a path as shown"`
	Type        string `json:"type" jsonschema:"file, directory, symlink or other"`
	Size        *int64 `json:"size,omitempty" jsonschema:"bytes, for files"`
}

func (s *Server) listDir(ctx context.Context, in ListDirInput) (ListDirOutput, error) {
	raw := in.Path
	if raw == "" {
		raw = sandbox.WorkspaceDir
	}
	p, err := sandboxPath(raw)
	if err != nil {
		return ListDirOutput{}, err
	}
	limit := s.o.Limits.Entries
	if in.MaxEntries < 0 {
		return ListDirOutput{}, fmt.Errorf("max_entries must not be negative")
	}
	if in.MaxEntries > 0 && in.MaxEntries < limit {
		limit = in.MaxEntries
	}
	t, resumed, err := s.ready(ctx, in.Sandbox, true)
	if err != nil {
		return ListDirOutput{}, err
	}
	entries, more, err := transfer.ListDir(ctx, t.run, p, limit)
	if err != nil {
		return ListDirOutput{}, err
	}
	out := ListDirOutput{Path: p, Entries: make([]DirEntry, 0, len(entries)), Truncated: more, Resumed: resumed}
	for _, e := range entries {
		d := DirEntry{Name: e.Name, Type: e.Type}
		if !isCleanText([]byte(e.Name)) || strings.ContainsAny(e.Name, "\n\t") || path.Base(e.Name) != e.Name {
			d.Name, d.NameAltered = strings.NewReplacer("\n", "?", "\t", "?").Replace(cleanText([]byte(e.Name))), true
		}
		if e.Size >= 0 {
			d.Size = &e.Size
		}
		out.Entries = append(out.Entries, d)
	}
	return out, nil
}
