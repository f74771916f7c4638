package fsm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Table (bucket) names. Exported where other packages page through them.
var (
	bMeta               = []byte("meta")
	bCounts             = []byte("counts")
	BUsers              = []byte("users")
	bUsersByName        = []byte("users_by_name")
	BGroups             = []byte("groups")
	bGroupsByName       = []byte("groups_by_name")
	bTokens             = []byte("tokens")
	BSchedules          = []byte("schedules")
	BSchedulesByCreated = []byte("schedules_by_created")
	BWebhooks           = []byte("webhooks")
	BFailedTasks        = []byte("failed_tasks")
	bNodes              = []byte("nodes")

	bSchedulesByEnabled         = []byte("schedules_by_enabled")
	bSchedulesByEndpoint        = []byte("schedules_by_endpoint")
	bSchedulesByEndpointEnabled = []byte("schedules_by_endpoint_enabled")
	bFailedTasksBySchedule      = []byte("failed_tasks_by_schedule")
	bRequeueRequests            = []byte("requeue_requests")
	bWebhooksByEvent            = []byte("webhooks_by_event")
	bRuns                       = []byte("runs")
	bRunsPending                = []byte("runs_pending")
	bWebhookOutbox              = []byte("webhook_outbox")

	allBuckets = [][]byte{bMeta, bCounts, BUsers, bUsersByName, BGroups, bGroupsByName, bTokens,
		BSchedules, BSchedulesByCreated, BWebhooks, BFailedTasks, bNodes,
		bSchedulesByEnabled, bSchedulesByEndpoint, bSchedulesByEndpointEnabled,
		bFailedTasksBySchedule, bRequeueRequests, bWebhooksByEvent,
		bRuns, bRunsPending, bWebhookOutbox}
)

var (
	kApplied    = []byte("applied_index")
	kClusterID  = []byte("cluster_id")
	kClusterKey = []byte("cluster_key")
	kLeader     = []byte("leader")
)

// User is an API user. Username is unique.
type User struct {
	ID           uint64    `json:"id"`
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	IsAdmin      bool      `json:"is_admin"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Groups       []uint64  `json:"groups,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Group is a named set of users.
type Group struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// Token maps a token's SHA-256 digest to its user; the key itself is never stored.
type Token struct {
	UserID    uint64    `json:"user_id"`
	CreatedAt time.Time `json:"created_at"`
}

// Schedule is a stored schedule with every field of the API contract.
type Schedule struct {
	ID                 string          `json:"id"`
	Frequency          *int64          `json:"frequency"`
	CronDefinition     string          `json:"cron_definition,omitempty"`
	IntervalDefinition string          `json:"interval_definition,omitempty"`
	IntervalAnchor     time.Time       `json:"interval_anchor,omitzero"`
	Endpoint           string          `json:"endpoint"`
	Payload            json.RawMessage `json:"payload"`
	AuthToken          *string         `json:"auth_token"`
	NextSendAt         *time.Time      `json:"next_send_at"`
	Enabled            bool            `json:"enabled"`
	CreatedAt          time.Time       `json:"created_at"`
	CreatedBy          uint64          `json:"created_by,omitempty"`
	UpdatedAt          time.Time       `json:"updated_at"`
	UpdatedBy          uint64          `json:"updated_by,omitempty"`
	Triggered          int64           `json:"triggered"`
	LastRunAt          *time.Time      `json:"last_run_at"`
	// LastSlot is the newest slot (unix seconds) claimed for the schedule
	// through CmdClaimSlots; it only grows.
	LastSlot int64 `json:"last_slot,omitempty"`
	// SlotsFrom: only slots strictly after this unix second are due. Set to
	// the creation time, and to the update time when the cron or interval
	// definition changes or the schedule is re-enabled. The executor fires
	// next at spec.Next(max(LastSlot, SlotsFrom)).
	SlotsFrom int64 `json:"slots_from,omitempty"`
}

// Webhook is a subscription to a schedule event.
type Webhook struct {
	ID      uint64    `json:"id"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	Event   string    `json:"event"`
	Target  string    `json:"target"`
	UserID  uint64    `json:"user"`
}

// FailedTask records a schedule whose delivery exhausted its retries.
type FailedTask struct {
	ID          uint64    `json:"id"`
	ScheduleID  string    `json:"schedule"`
	TaskID      string    `json:"task_id"`
	InitiatedAt time.Time `json:"initiated_at"`
	Reason      string    `json:"reason"`
}

// Node is the replicated metadata of a cluster member, so that any node can
// find the leader's HTTP address from its raft id.
type Node struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
}

// LeaderTerm records the most recent leader to announce itself.
type LeaderTerm struct {
	NodeID string `json:"node_id"`
	Term   uint64 `json:"term"`
}

// Commands.

// InitCmd creates the cluster identity and the first admin, once.
type InitCmd struct {
	ClusterID   string    `json:"cluster_id"`
	ClusterKey  string    `json:"cluster_key"`
	AdminEmail  string    `json:"admin_email"`
	TokenDigest []byte    `json:"token_digest"`
	At          time.Time `json:"at"`
}

// InitResult tells the leader whether its InitCmd took effect.
type InitResult struct {
	Initialized bool
	UserID      uint64
}

// IssueTokenCmd finds the user named Username, creating it when missing, and
// adds a token for it.
type IssueTokenCmd struct {
	Username    string    `json:"username"`
	Email       string    `json:"email"`
	TokenDigest []byte    `json:"token_digest"`
	At          time.Time `json:"at"`
}

// IssueTokenResult is the response of IssueTokenCmd.
type IssueTokenResult struct {
	UserID  uint64
	Created bool
}

// CreateUserCmd creates a user; ErrConflict when the username exists.
type CreateUserCmd struct {
	Username     string    `json:"username"`
	Email        string    `json:"email"`
	IsAdmin      bool      `json:"is_admin"`
	PasswordHash string    `json:"password_hash,omitempty"`
	At           time.Time `json:"at"`
}

// RevokeTokenCmd deletes a token by digest.
type RevokeTokenCmd struct {
	TokenDigest []byte `json:"token_digest"`
}

// CreateGroupCmd creates a group; ErrConflict when the name exists.
type CreateGroupCmd struct {
	Name string `json:"name"`
}

// AddToGroupCmd adds a user to a group.
type AddToGroupCmd struct {
	UserID  uint64 `json:"user_id"`
	GroupID uint64 `json:"group_id"`
}

// RemoveNodeCmd forgets a member's metadata.
type RemoveNodeCmd struct {
	ID string `json:"id"`
}

func init() {
	register(CmdInit, "init", applyInit)
	register(CmdLeaderTerm, "leader_term", applyLeaderTerm)
	register(CmdSetNode, "set_node", applySetNode)
	register(CmdRemoveNode, "remove_node", applyRemoveNode)
	register(CmdIssueToken, "issue_token", applyIssueToken)
	register(CmdCreateUser, "create_user", applyCreateUser)
	register(CmdRevokeToken, "revoke_token", applyRevokeToken)
	register(CmdCreateGroup, "create_group", applyCreateGroup)
	register(CmdAddToGroup, "add_to_group", applyAddToGroup)
	register(CmdCreateSchedule, "create_schedule", applyCreateSchedule)
	register(CmdUpdateSchedule, "update_schedule", applyUpdateSchedule)
	register(CmdDeleteSchedule, "delete_schedule", applyDeleteSchedule)
	register(CmdAddFailedTask, "add_failed_task", applyAddFailedTask)
	register(CmdRequeueFailedTasks, "requeue_failed_tasks", applyRequeueFailedTasks)
	register(CmdFinishRequeue, "finish_requeue", applyFinishRequeue)
	register(CmdCreateWebhook, "create_webhook", applyCreateWebhook)
	register(CmdUpdateWebhook, "update_webhook", applyUpdateWebhook)
	register(CmdDeleteWebhook, "delete_webhook", applyDeleteWebhook)
}

func applyInit(tx *bolt.Tx, c *InitCmd) (any, []string, error) {
	meta := tx.Bucket(bMeta)
	if meta.Get(kClusterID) != nil {
		// Every new leader proposes an init until one commits; only the first counts.
		return InitResult{}, nil, nil
	}
	if err := meta.Put(kClusterID, []byte(c.ClusterID)); err != nil {
		return nil, nil, err
	}
	if err := meta.Put(kClusterKey, []byte(c.ClusterKey)); err != nil {
		return nil, nil, err
	}
	u, err := insertUser(tx, User{Username: c.AdminEmail, Email: c.AdminEmail, IsAdmin: true, CreatedAt: c.At})
	if err != nil {
		return nil, nil, err
	}
	if err := putJSON(tx.Bucket(bTokens), c.TokenDigest, Token{UserID: u.ID, CreatedAt: c.At}); err != nil {
		return nil, nil, err
	}
	return InitResult{Initialized: true, UserID: u.ID}, nil, nil
}

func applyLeaderTerm(tx *bolt.Tx, c *LeaderTerm) (any, []string, error) {
	return nil, nil, putJSON(tx.Bucket(bMeta), kLeader, c)
}

func applySetNode(tx *bolt.Tx, c *Node) (any, []string, error) {
	return nil, []string{c.ID}, putJSON(tx.Bucket(bNodes), []byte(c.ID), c)
}

func applyRemoveNode(tx *bolt.Tx, c *RemoveNodeCmd) (any, []string, error) {
	b := tx.Bucket(bNodes)
	if b.Get([]byte(c.ID)) == nil {
		return nil, nil, nil
	}
	return nil, []string{c.ID}, b.Delete([]byte(c.ID))
}

func applyIssueToken(tx *bolt.Tx, c *IssueTokenCmd) (any, []string, error) {
	res := IssueTokenResult{}
	if id := tx.Bucket(bUsersByName).Get([]byte(c.Username)); id != nil {
		res.UserID = binary.BigEndian.Uint64(id)
	} else {
		u, err := insertUser(tx, User{Username: c.Username, Email: c.Email, CreatedAt: c.At})
		if err != nil {
			return nil, nil, err
		}
		res.UserID, res.Created = u.ID, true
	}
	if err := putJSON(tx.Bucket(bTokens), c.TokenDigest, Token{UserID: res.UserID, CreatedAt: c.At}); err != nil {
		return nil, nil, err
	}
	return res, nil, nil
}

func applyCreateUser(tx *bolt.Tx, c *CreateUserCmd) (any, []string, error) {
	if tx.Bucket(bUsersByName).Get([]byte(c.Username)) != nil {
		return nil, nil, fmt.Errorf("user %q: %w", c.Username, ErrConflict)
	}
	u, err := insertUser(tx, User{Username: c.Username, Email: c.Email, IsAdmin: c.IsAdmin,
		PasswordHash: c.PasswordHash, CreatedAt: c.At})
	if err != nil {
		return nil, nil, err
	}
	return u.ID, nil, nil
}

func applyRevokeToken(tx *bolt.Tx, c *RevokeTokenCmd) (any, []string, error) {
	b := tx.Bucket(bTokens)
	if b.Get(c.TokenDigest) == nil {
		return nil, nil, fmt.Errorf("token: %w", ErrNotFound)
	}
	return nil, nil, b.Delete(c.TokenDigest)
}

func applyCreateGroup(tx *bolt.Tx, c *CreateGroupCmd) (any, []string, error) {
	byName := tx.Bucket(bGroupsByName)
	if byName.Get([]byte(c.Name)) != nil {
		return nil, nil, fmt.Errorf("group %q: %w", c.Name, ErrConflict)
	}
	b := tx.Bucket(BGroups)
	id, err := b.NextSequence()
	if err != nil {
		return nil, nil, err
	}
	if err := putJSON(b, u64(id), Group{ID: id, Name: c.Name}); err != nil {
		return nil, nil, err
	}
	if err := byName.Put([]byte(c.Name), u64(id)); err != nil {
		return nil, nil, err
	}
	return id, nil, addCount(tx, BGroups, 1)
}

func applyAddToGroup(tx *bolt.Tx, c *AddToGroupCmd) (any, []string, error) {
	u, err := GetUser(tx, c.UserID)
	if err != nil {
		return nil, nil, err
	}
	if tx.Bucket(BGroups).Get(u64(c.GroupID)) == nil {
		return nil, nil, fmt.Errorf("group %d: %w", c.GroupID, ErrNotFound)
	}
	for _, g := range u.Groups {
		if g == c.GroupID {
			return nil, nil, nil
		}
	}
	u.Groups = append(u.Groups, c.GroupID)
	sort.Slice(u.Groups, func(i, j int) bool { return u.Groups[i] < u.Groups[j] })
	return nil, nil, putJSON(tx.Bucket(BUsers), u64(u.ID), u)
}

func insertUser(tx *bolt.Tx, u User) (User, error) {
	b := tx.Bucket(BUsers)
	id, err := b.NextSequence()
	if err != nil {
		return u, err
	}
	u.ID = id
	if err := putJSON(b, u64(id), u); err != nil {
		return u, err
	}
	if err := tx.Bucket(bUsersByName).Put([]byte(u.Username), u64(id)); err != nil {
		return u, err
	}
	return u, addCount(tx, BUsers, 1)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return b.Put(key, buf)
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("decode %s/%x: %w", b.Tx().DB().Path(), key, err)
	}
	return true, nil
}

// Reads. Each takes the transaction of a View so a handler can read several
// tables consistently.

// GetUser returns a user by id.
func GetUser(tx *bolt.Tx, id uint64) (User, error) {
	var u User
	ok, err := getJSON(tx.Bucket(BUsers), u64(id), &u)
	if err != nil {
		return u, err
	}
	if !ok {
		return u, fmt.Errorf("user %d: %w", id, ErrNotFound)
	}
	return u, nil
}

// DecodeUser decodes a row of the users table.
func DecodeUser(v []byte) (User, error) {
	var u User
	err := json.Unmarshal(v, &u)
	return u, err
}

// UserByUsername returns a user by its unique username.
func UserByUsername(tx *bolt.Tx, name string) (User, error) {
	id := tx.Bucket(bUsersByName).Get([]byte(name))
	if id == nil {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNotFound)
	}
	return GetUser(tx, binary.BigEndian.Uint64(id))
}

// UserByTokenDigest returns the owner of a token digest.
func UserByTokenDigest(tx *bolt.Tx, digest []byte) (User, error) {
	var t Token
	ok, err := getJSON(tx.Bucket(bTokens), digest, &t)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	return GetUser(tx, t.UserID)
}

// GetGroup returns a group by id.
func GetGroup(tx *bolt.Tx, id uint64) (Group, error) {
	var g Group
	ok, err := getJSON(tx.Bucket(BGroups), u64(id), &g)
	if err != nil {
		return g, err
	}
	if !ok {
		return g, fmt.Errorf("group %d: %w", id, ErrNotFound)
	}
	return g, nil
}

// Nodes returns the metadata of every member, ordered by id.
func Nodes(tx *bolt.Tx) ([]Node, error) {
	var out []Node
	err := tx.Bucket(bNodes).ForEach(func(k, v []byte) error {
		var n Node
		if err := json.Unmarshal(v, &n); err != nil {
			return fmt.Errorf("decode node %s: %w", k, err)
		}
		out = append(out, n)
		return nil
	})
	return out, err
}

// GetNode returns one member's metadata.
func GetNode(tx *bolt.Tx, id string) (Node, bool, error) {
	var n Node
	ok, err := getJSON(tx.Bucket(bNodes), []byte(id), &n)
	return n, ok, err
}

// ClusterIdentity returns the cluster id and the cluster key that members use
// to authenticate to each other; both empty before the cluster is initialised.
func ClusterIdentity(tx *bolt.Tx) (id, key string) {
	m := tx.Bucket(bMeta)
	return string(m.Get(kClusterID)), string(m.Get(kClusterKey))
}

// CurrentLeaderTerm returns the last leader announcement.
func CurrentLeaderTerm(tx *bolt.Tx) (LeaderTerm, error) {
	var lt LeaderTerm
	_, err := getJSON(tx.Bucket(bMeta), kLeader, &lt)
	return lt, err
}

// U64Key encodes an integer id as a table key.
func U64Key(id uint64) []byte { return u64(id) }

// KeyU64 decodes an integer table key.
func KeyU64(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
