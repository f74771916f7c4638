package fsm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	bolt "go.etcd.io/bbolt"
)

// CommandType is the first byte of every raft log entry this FSM applies.
type CommandType uint8

// OptionalFlag marks a command that a node which does not know its type may
// skip: a newer leader can send it to older followers during a rolling
// upgrade without stopping them.
const OptionalFlag CommandType = 0x80

// Command types. Values are persisted in the raft log: never renumber.
const (
	CmdInit        CommandType = 1
	CmdLeaderTerm  CommandType = 2
	CmdSetNode     CommandType = 3
	CmdRemoveNode  CommandType = 4
	CmdIssueToken  CommandType = 5
	CmdCreateUser  CommandType = 6
	CmdRevokeToken CommandType = 7
	CmdCreateGroup CommandType = 8
	CmdAddToGroup  CommandType = 9
)

// Business-rule failures, returned as apply responses and matched with
// errors.Is by callers.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
)

type applyFunc func(tx *bolt.Tx, payload []byte) (any, Effect, error)

type registration struct {
	name  string
	apply applyFunc
}

var registry = map[CommandType]registration{}

// register binds a command type to a typed apply function. The payload is
// JSON; a payload that does not decode means the log is corrupt.
func register[T any](t CommandType, name string, fn func(tx *bolt.Tx, cmd *T) (any, []string, error)) {
	if _, dup := registry[t]; dup {
		panic(fmt.Sprintf("fsm: command type %d registered twice", t))
	}
	registry[t] = registration{name: name, apply: func(tx *bolt.Tx, payload []byte) (any, Effect, error) {
		var cmd T
		if err := json.Unmarshal(payload, &cmd); err != nil {
			panic(fmt.Sprintf("fsm: corrupt %s command payload: %v", name, err))
		}
		v, keys, err := fn(tx, &cmd)
		return v, Effect{Type: t, Keys: keys}, err
	}}
}

// Encode builds the log entry for a command.
func Encode(t CommandType, payload any) ([]byte, error) {
	if _, ok := registry[t&^OptionalFlag]; !ok && t&OptionalFlag == 0 {
		return nil, fmt.Errorf("encode command: unknown type %d", t)
	}
	b, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	out := make([]byte, 0, len(b)+1)
	out = append(out, byte(t))
	return append(out, b...), nil
}

// applyCommand decodes and applies one entry. Business errors become the
// response; a malformed entry panics, because continuing would let this node
// diverge from the others.
func applyCommand(tx *bolt.Tx, l *raft.Log) (any, Effect) {
	if len(l.Data) == 0 {
		panic(fmt.Sprintf("fsm: empty command at index %d", l.Index))
	}
	t := CommandType(l.Data[0])
	reg, ok := registry[t&^OptionalFlag]
	if !ok {
		if t&OptionalFlag != 0 {
			return nil, Effect{}
		}
		panic(fmt.Sprintf("fsm: unknown command type %d at index %d", t, l.Index))
	}
	v, eff, err := reg.apply(tx, l.Data[1:])
	if err != nil {
		return err, Effect{}
	}
	return v, eff
}
