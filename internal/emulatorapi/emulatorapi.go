// Package emulatorapi is the JSON of cmd/discord-emulator's control API: one definition for
// the emulator that writes it and the tests that read it (internal/localcluster,
// test/clients). Fields are added, never renamed or removed: the end-to-end tests read
// them from an emulator image built earlier. docs/discord-emulator.md documents each one.
// It holds types only, so that a client of the control API imports nothing of the fake.
package emulatorapi

// Stats is GET /control/stats.
type Stats struct {
	Connections           int `json:"connections"`
	OpenConnections       int `json:"openConnections"`
	Identifies            int `json:"identifies"`
	Resumes               int `json:"resumes"`
	BucketViolations      int `json:"bucketViolations"`
	SessionStartRemaining int `json:"sessionStartRemaining"`
	CoverageGaps          int `json:"coverageGaps"`

	ResumeFailures int `json:"resumeFailures"`
	// ConnectionsByCompression is keyed by none, zlib-stream or zstd-stream.
	ConnectionsByCompression map[string]int     `json:"connectionsByCompression"`
	ServerCloseCodes         map[int]int        `json:"serverCloseCodes"`
	BytesSent                int64              `json:"bytesSent"`
	REST                     RESTStats          `json:"rest"`
	Shards                   map[int]ShardStats `json:"shards"`
}

// RESTStats counts the REST requests, by route ("GET /gateway/bot").
type RESTStats struct {
	Requests          map[string]int `json:"requests"`
	RateLimited       map[string]int `json:"rateLimited"`
	GlobalRateLimited int            `json:"globalRateLimited"`
}

// ShardStats is one shard ID across all its connections.
type ShardStats struct {
	Connected            bool     `json:"connected"`
	Connections          int      `json:"connections"`
	Compression          string   `json:"compression"`
	Compressions         []string `json:"compressions"`
	Identifies           int      `json:"identifies"`
	IdentifiesUnanswered int      `json:"identifiesUnanswered"`
	Resumes              int      `json:"resumes"`
	ResumeFailures       int      `json:"resumeFailures"`
	ResumesUnanswered    int      `json:"resumesUnanswered"`
	// OpsReceived has one entry per connection, in order: the payloads its client sent,
	// by opcode.
	OpsReceived     []map[int]int `json:"opsReceived"`
	CloseCodes      CloseCodes    `json:"closeCodes"`
	EventsDelivered int           `json:"eventsDelivered"`
	Replayed        int           `json:"replayed"`
	Heartbeats      int           `json:"heartbeats"`
	BytesSent       int64         `json:"bytesSent"`
	SessionID       string        `json:"sessionId"`
	LastSeq         int           `json:"lastSeq"`
}

// CloseCodes count how a shard's connections ended, by close code: the codes its client
// sent (0: none, the connection was cut) and the codes the server sent.
type CloseCodes struct {
	Client map[int]int `json:"client"`
	Server map[int]int `json:"server"`
}
