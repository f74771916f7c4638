// Package fsm is the replicated state machine of a schedulerd cluster: the
// command envelope and its apply functions, the BoltDB tables they write, and
// snapshot/restore. Everything here is deterministic: the same log applied on
// any node yields byte-identical tables.
package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// ErrFailed is returned for every write once a batch could not be committed to
// disk: the FSM no longer matches the raft log, so the node must stop and
// resume from its stored index after a restart.
var ErrFailed = errors.New("state machine failed")

// Options configures Open.
type Options struct {
	Logger hclog.Logger
	// OnFatal is called once, from the apply goroutine, when a batch cannot be
	// committed. The node is expected to shut down.
	OnFatal func(error)
	// BeforeCommit, when set, runs inside each batch transaction just before
	// commit; an error aborts the commit as a failing disk would. Tests use it
	// to inject ENOSPC.
	BeforeCommit func() error
}

// FSM implements raft.BatchingFSM on top of a bbolt file.
type FSM struct {
	path string
	opts Options
	log  hclog.Logger

	// mu guards db against Restore swapping the file; readers and the
	// applier hold it shared.
	mu sync.RWMutex
	db *bolt.DB

	applied atomic.Uint64
	failed  atomic.Pointer[error]

	waitMu  sync.Mutex
	waitCh  chan struct{} // closed and replaced whenever applied advances
	watchMu sync.Mutex
	watches []func(Change)
}

// Change describes what a batch or a restore changed, for subscribers such as
// the executor that keep derived in-memory state.
type Change struct {
	Index    uint64
	Restored bool     // the whole state was replaced
	Commands []Effect // effects of the commands in the batch, in log order
}

// Effect is what one applied command touched.
type Effect struct {
	Type CommandType
	Keys []string
}

func boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:        time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// A snapshot holds a read transaction for as long as it streams
		// (seconds at a million schedules); growing the file past the
		// mapping would make writers wait for it to finish. The mapping is
		// virtual address space: it costs no memory until pages are used.
		InitialMmapSize: 8 << 30,
	}
}

// Open opens (or creates) the state file at path.
func Open(path string, opts Options) (*FSM, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	f := &FSM{path: path, opts: opts, log: opts.Logger, waitCh: make(chan struct{})}
	db, err := openDB(path)
	if err != nil {
		return nil, err
	}
	f.db = db
	idx, err := f.readApplied()
	if err != nil {
		db.Close()
		return nil, err
	}
	f.applied.Store(idx)
	return f, nil
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("create bucket %s: %w", b, err)
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise state file %s: %w", path, err)
	}
	return db, nil
}

func (f *FSM) readApplied() (uint64, error) {
	var idx uint64
	err := f.db.View(func(tx *bolt.Tx) error {
		idx = getUint(tx.Bucket(bMeta), kApplied)
		return nil
	})
	return idx, err
}

// Close closes the state file.
func (f *FSM) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.db == nil {
		return nil
	}
	err := f.db.Close()
	f.db = nil
	return err
}

// AppliedIndex is the raft index of the last entry committed to the state file.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Err reports the failure that stopped the FSM, if any.
func (f *FSM) Err() error {
	if p := f.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// WaitForIndex blocks until the FSM has applied idx, the FSM failed, or done
// is closed (the caller's context).
func (f *FSM) WaitForIndex(done <-chan struct{}, idx uint64) error {
	for {
		f.waitMu.Lock()
		ch := f.waitCh
		f.waitMu.Unlock()
		if f.applied.Load() >= idx {
			return nil
		}
		if err := f.Err(); err != nil {
			return err
		}
		select {
		case <-ch:
		case <-done:
			return fmt.Errorf("wait for index %d (applied %d): %w", idx, f.applied.Load(), ErrWaitAborted)
		}
	}
}

// ErrWaitAborted is returned by WaitForIndex when the caller gave up.
var ErrWaitAborted = errors.New("gave up waiting for the state machine")

func (f *FSM) advance(idx uint64) {
	f.applied.Store(idx)
	f.waitMu.Lock()
	close(f.waitCh)
	f.waitCh = make(chan struct{})
	f.waitMu.Unlock()
}

// Watch registers fn to be called after every committed batch and restore,
// on the apply goroutine: fn must be quick and must not call back into raft.
func (f *FSM) Watch(fn func(Change)) {
	f.watchMu.Lock()
	f.watches = append(f.watches, fn)
	f.watchMu.Unlock()
}

func (f *FSM) notify(c Change) {
	f.watchMu.Lock()
	ws := f.watches
	f.watchMu.Unlock()
	for _, fn := range ws {
		fn(c)
	}
}

// View runs fn in a read transaction on the current state.
func (f *FSM) View(fn func(tx *bolt.Tx) error) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.db == nil {
		return errors.New("state file closed")
	}
	return f.db.View(fn)
}

// Apply implements raft.FSM for callers that do not batch.
func (f *FSM) Apply(l *raft.Log) interface{} {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch implements raft.BatchingFSM: the whole batch and the new applied
// index commit in one transaction, so a crash leaves the file at a batch
// boundary and a restart resumes right after it.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	if err := f.Err(); err != nil {
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	f.mu.RLock()
	defer f.mu.RUnlock()

	var last uint64
	effects := make([]Effect, 0, len(logs))
	err := f.db.Update(func(tx *bolt.Tx) error {
		denseAppends(tx)
		meta := tx.Bucket(bMeta)
		applied := getUint(meta, kApplied)
		last = applied
		for i, l := range logs {
			if l.Index <= applied {
				// Already in the file: the log is being replayed after a
				// restart. Nobody waits for these responses.
				continue
			}
			if l.Type == raft.LogCommand {
				var eff Effect
				resp[i], eff = applyCommand(tx, l)
				if eff.Type != 0 {
					effects = append(effects, eff)
				}
			}
			last = l.Index
		}
		if last == applied {
			return nil
		}
		if err := putUint(meta, kApplied, last); err != nil {
			return err
		}
		if f.opts.BeforeCommit != nil {
			return f.opts.BeforeCommit()
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("commit batch ending at index %d: %w: %w", logs[len(logs)-1].Index, ErrFailed, err)
		f.fail(err)
		for i := range resp {
			resp[i] = err
		}
		return resp
	}
	if last > f.applied.Load() {
		f.advance(last)
		f.notify(Change{Index: last, Commands: effects})
	}
	return resp
}

func (f *FSM) fail(err error) {
	if !f.failed.CompareAndSwap(nil, &err) {
		return
	}
	f.log.Error("state machine stopped: cannot commit", "error", err)
	// Wake waiters so they see the failure instead of timing out.
	f.advance(f.applied.Load())
	if f.opts.OnFatal != nil {
		f.opts.OnFatal(err)
	}
}

// Snapshot implements raft.FSM. The read transaction pins the state at the
// current applied index; Persist streams it while writes go on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	tx, err := f.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	return &snapshot{tx: tx}, nil
}

type snapshot struct {
	tx   *bolt.Tx
	once sync.Once
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	defer s.Release()
	if _, err := s.tx.WriteTo(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("stream state file: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {
	s.once.Do(func() { _ = s.tx.Rollback() })
}

// Restore implements raft.FSM: the stream is a whole bbolt file, written
// beside the current one and swapped in.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	tmp := f.path + ".restore"
	if err := writeFileSync(tmp, rc); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write restored state: %w", err)
	}
	if err := f.swapIn(tmp); err != nil {
		return err
	}
	idx := f.AppliedIndex()
	f.log.Info("restored state from snapshot", "applied_index", idx)
	f.notify(Change{Index: idx, Restored: true})
	return nil
}

// RestoreFile replaces the state with a snapshot stream if that stream is
// newer than the state on disk. The node calls it before starting raft when a
// snapshot is ahead of the state file (which raft would not replay, since it
// is told not to restore snapshots on start).
func (f *FSM) RestoreIfNewer(snapshotIndex uint64, open func() (io.ReadCloser, error)) (bool, error) {
	if snapshotIndex <= f.AppliedIndex() {
		return false, nil
	}
	rc, err := open()
	if err != nil {
		return false, fmt.Errorf("open snapshot at index %d: %w", snapshotIndex, err)
	}
	if err := f.Restore(rc); err != nil {
		return false, err
	}
	return true, nil
}

func (f *FSM) swapIn(tmp string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.db.Close(); err != nil {
		return fmt.Errorf("close state file for restore: %w", err)
	}
	if err := os.Rename(tmp, f.path); err != nil {
		return fmt.Errorf("swap in restored state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	db, err := openDB(f.path)
	if err != nil {
		return err
	}
	f.db = db
	idx, err := f.readApplied()
	if err != nil {
		return err
	}
	f.advance(idx)
	return nil
}

func writeFileSync(path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Digest hashes every table (bucket names, sequences, keys and values in key
// order). Two nodes at the same applied index must report the same digest.
func (f *FSM) Digest() (string, error) {
	d, _, err := f.DigestAt()
	return d, err
}

// DigestAt is Digest together with the applied index it was taken at, both
// read in one transaction.
func (f *FSM) DigestAt() (string, uint64, error) {
	h := sha256.New()
	var index uint64
	err := f.View(func(tx *bolt.Tx) error {
		index = getUint(tx.Bucket(bMeta), kApplied)
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			h.Write(name)
			var seq [8]byte
			binary.BigEndian.PutUint64(seq[:], b.Sequence())
			h.Write(seq[:])
			return b.ForEach(func(k, v []byte) error {
				var n [8]byte
				binary.BigEndian.PutUint64(n[:], uint64(len(k)))
				h.Write(n[:])
				h.Write(k)
				binary.BigEndian.PutUint64(n[:], uint64(len(v)))
				h.Write(n[:])
				h.Write(v)
				return nil
			})
		})
	})
	if err != nil {
		return "", 0, fmt.Errorf("digest state: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), index, nil
}

func getUint(b *bolt.Bucket, key []byte) uint64 {
	v := b.Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putUint(b *bolt.Bucket, key []byte, v uint64) error {
	return b.Put(key, u64(v))
}

func u64(v uint64) []byte {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return buf[:]
}

// addCount adjusts a maintained row count so lists never scan to count.
func addCount(tx *bolt.Tx, table []byte, delta int64) error {
	b := tx.Bucket(bCounts)
	n := int64(getUint(b, table)) + delta
	if n < 0 {
		n = 0
	}
	return putUint(b, table, uint64(n))
}

// Count returns the maintained row count of a table.
func Count(tx *bolt.Tx, table []byte) uint64 {
	return getUint(tx.Bucket(bCounts), table)
}

// appendFill is how full bbolt packs a page it splits in the buckets whose
// keys grow with time (schedule ids are UUIDv7, the created index leads
// with the creation time, so does the enabled index within enabled
// schedules). With bbolt's default of one half, appending leaves every page
// half empty, and the state file, its snapshots and the pages a node keeps
// mapped grow with it (fsm/DESIGN.md).
const appendFill = 0.9

// denseAppends sets appendFill on those buckets for one write transaction
// (bbolt keeps the setting on the bucket handle the transaction caches, not
// in the file).
func denseAppends(tx *bolt.Tx) {
	for _, name := range [][]byte{BSchedules, BSchedulesByCreated, bSchedulesByEnabled} {
		if b := tx.Bucket(name); b != nil {
			b.FillPercent = appendFill
		}
	}
}
