// Package lazyfs serves a dataset version to a job as a read-only file
// system whose files are fetched on first open — the lazy loading of a
// Lustre file system linked to S3. Listing, stat and sizes come from the
// version's manifest, so a job that reads a few files of a large dataset
// starts at once and fetches only those, each on its first read. The bytes come from the node's
// content-addressed cache (the caller's Fetch), which verifies them.
//
// It uses FUSE (/dev/fuse, mount(2) as root or fusermount otherwise);
// Mount returns an error where neither works, and the caller stages the
// files instead.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hpcml/hpcml/internal/dataset"
)

// Fetch makes an object's bytes a local file and returns it open for
// reading; the mount closes it. Open rather than a path: the cache
// behind it may evict the object before a path could be opened. It is
// called on each open of a file; the cache fetches once.
type Fetch func(ctx context.Context, o dataset.Object) (*os.File, error)

// metadataTTL is how long the kernel may keep names and attributes: a
// version never changes, so as long as the mount lives.
const metadataTTL = 24 * time.Hour

// Mount is a mounted dataset version.
type Mount struct {
	dir    string
	server *fuse.Server
	errs   *errorLog
}

// New mounts objects read-only on dir, an empty directory. Each file is
// fetched on its first open and read from the fetched copy.
func New(dir string, objects []dataset.Object, fetch Fetch) (*Mount, error) {
	tree, err := buildTree(objects)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("lazy loading needs FUSE: %w", err)
	}
	ttl := metadataTTL
	errs := &errorLog{}
	root := &dirNode{tree: tree, fetch: fetch, mounted: time.Now(), errs: errs}
	server, err := fs.Mount(dir, root, &fs.Options{
		EntryTimeout: &ttl,
		AttrTimeout:  &ttl,
		MountOptions: fuse.MountOptions{
			FsName:      "hpcml-dataset",
			Name:        "hpcml",
			DirectMount: true, // mount(2) where allowed, else fusermount
			// One file system per job; nobody else should see it.
			AllowOther: false,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return &Mount{dir: dir, server: server, errs: errs}, nil
}

// Unmount unmounts and waits for the server to stop. A file still open
// (a process the job left behind) makes the kernel refuse; the mount is
// then detached, which ends it once the file is closed.
func (m *Mount) Unmount() error {
	err := m.server.Unmount()
	if err != nil {
		if derr := detach(m.dir); derr != nil {
			return fmt.Errorf("unmount %s: %w (detach: %v)", m.dir, err, derr)
		}
	}
	m.server.Wait()
	return nil
}

// FetchErrors are the failures the job saw as EIO, for its log.
func (m *Mount) FetchErrors() []string { return m.errs.list() }

// errorLog keeps the first few fetch failures, each once (the kernel
// retries a failed read).
type errorLog struct {
	mu   sync.Mutex
	errs []string
}

const maxLoggedErrors = 20

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if msg := err.Error(); len(l.errs) < maxLoggedErrors && !slices.Contains(l.errs, msg) {
		l.errs = append(l.errs, msg)
	}
}

func (l *errorLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

// tree is a directory of the version: files and subdirectories by name.
type tree struct {
	files map[string]dataset.Object
	dirs  map[string]*tree
}

func newTree() *tree { return &tree{files: map[string]dataset.Object{}, dirs: map[string]*tree{}} }

// buildTree lays the objects out as directories; a key that is both a
// file and a directory cannot be, and is refused before anything is
// mounted.
func buildTree(objects []dataset.Object) (*tree, error) {
	root := newTree()
	for _, o := range objects {
		if o.Key == "." || !iofs.ValidPath(o.Key) {
			return nil, fmt.Errorf("object key %q is not a clean relative path", o.Key)
		}
		parts := strings.Split(o.Key, "/")
		t := root
		for i, p := range parts[:len(parts)-1] {
			if _, ok := t.files[p]; ok {
				return nil, fmt.Errorf("object key %q: %s is a file", o.Key, strings.Join(parts[:i+1], "/"))
			}
			sub := t.dirs[p]
			if sub == nil {
				sub = newTree()
				t.dirs[p] = sub
			}
			t = sub
		}
		name := parts[len(parts)-1]
		if _, ok := t.dirs[name]; ok {
			return nil, fmt.Errorf("object key %q is also a directory", o.Key)
		}
		if _, ok := t.files[name]; ok {
			return nil, fmt.Errorf("object key %q twice", o.Key)
		}
		t.files[name] = o
	}
	return root, nil
}

// dirNode is the root; it builds the whole tree when mounted, as
// persistent inodes (the kernel may forget them; the tree stays).
type dirNode struct {
	fs.Inode
	tree    *tree
	fetch   Fetch
	mounted time.Time
	errs    *errorLog
}

var _ = (fs.NodeOnAdder)((*dirNode)(nil))

func (d *dirNode) OnAdd(ctx context.Context) { d.add(ctx, &d.Inode, d.tree) }

func (d *dirNode) add(ctx context.Context, parent *fs.Inode, t *tree) {
	for name, sub := range t.dirs {
		ch := parent.NewPersistentInode(ctx, &readOnlyDir{mtime: d.mounted}, fs.StableAttr{Mode: fuse.S_IFDIR})
		parent.AddChild(name, ch, true)
		d.add(ctx, ch, sub)
	}
	for name, o := range t.files {
		ch := parent.NewPersistentInode(ctx, &fileNode{object: o, fetch: d.fetch, mtime: d.mounted, errs: d.errs}, fs.StableAttr{Mode: fuse.S_IFREG})
		parent.AddChild(name, ch, true)
	}
}

var _ = (fs.NodeGetattrer)((*dirNode)(nil))

func (d *dirNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setDirAttr(out, d.mounted)
	return 0
}

// readOnlyDir is a directory below the root.
type readOnlyDir struct {
	fs.Inode
	mtime time.Time
}

var _ = (fs.NodeGetattrer)((*readOnlyDir)(nil))

func (d *readOnlyDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	setDirAttr(out, d.mtime)
	return 0
}

func setDirAttr(out *fuse.AttrOut, mtime time.Time) {
	out.Mode = fuse.S_IFDIR | 0o555
	out.SetTimes(nil, &mtime, &mtime)
}

// fileNode is one object of the version.
type fileNode struct {
	fs.Inode
	object dataset.Object
	fetch  Fetch
	mtime  time.Time
	errs   *errorLog
}

var (
	_ = (fs.NodeGetattrer)((*fileNode)(nil))
	_ = (fs.NodeOpener)((*fileNode)(nil))
)

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = fuse.S_IFREG | 0o444
	out.Size = uint64(f.object.Size)
	out.Blocks = (out.Size + 511) / 512
	out.SetTimes(nil, &f.mtime, &f.mtime)
	return 0
}

// Open hands out a handle; the object is fetched on the first read
// (the cache makes that once per node), so that opening a file to stat
// it, as `wc -c <file` does, costs nothing. An open for writing is
// refused: the version's bytes are the same for every job.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EROFS
	}
	// The bytes never change: the kernel may keep its page cache.
	return &handle{node: f}, fuse.FOPEN_KEEP_CACHE, 0
}

// handle reads an open object's local copy, fetched on the first read.
// The copy stays readable even if the cache evicts it meanwhile (the
// open file keeps the inode).
type handle struct {
	node *fileNode
	mu   sync.Mutex
	file *os.File
}

var (
	_ = (fs.FileReader)((*handle)(nil))
	_ = (fs.FileReleaser)((*handle)(nil))
)

func (h *handle) local(ctx context.Context) (*os.File, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != nil {
		return h.file, 0
	}
	o := h.node.object
	file, err := h.node.fetch(ctx, o)
	if err != nil {
		h.node.errs.add(fmt.Errorf("%s: %w", o.Key, err))
		if errors.Is(err, context.Canceled) {
			return nil, syscall.EINTR
		}
		return nil, syscall.EIO
	}
	h.file = file
	return file, 0
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	file, errno := h.local(ctx)
	if errno != 0 {
		return nil, errno
	}
	n, err := file.ReadAt(dest, off)
	if err != nil && n == 0 && !errors.Is(err, io.EOF) {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.file != nil {
		h.file.Close()
	}
	return 0
}
