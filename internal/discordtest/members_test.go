package discordtest

import (
	"fmt"
	"testing"

	"github.com/disgoorg/disgo/gateway"
)

// A Request Guild Members is answered on the connection that sent it with one
// GUILD_MEMBERS_CHUNK: the members matching query or user_ids, at most limit, the nonce
// echoed, unknown user IDs in not_found.
func TestRequestGuildMembersIsAnsweredWithAChunk(t *testing.T) {
	g := uint64(1) << 22
	srv := newTestServer(t, Options{Guilds: []uint64{g}})
	for _, name := range []string{"alice", "albert", "bob"} {
		if _, err := srv.AddMember(g, Member{Username: name}); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, srv, "")
	c.identify(0, 1, 1)
	for _, tc := range []struct {
		req      map[string]any
		names    []string
		notFound int
	}{
		{map[string]any{"guild_id": fmt.Sprint(g), "query": "al", "limit": 0, "nonce": "a"}, []string{"alice", "albert"}, 0},
		{map[string]any{"guild_id": fmt.Sprint(g), "query": "", "limit": 1, "nonce": "b"}, nil, 0},
		{map[string]any{"guild_id": fmt.Sprint(g), "user_ids": []string{"999"}, "nonce": "c"}, []string{}, 1},
	} {
		c.send(8, tc.req)
		chunk := c.nextDispatch(gateway.EventTypeGuildMembersChunk).Msg.D.(gateway.EventGuildMembersChunk)
		if chunk.Nonce != tc.req["nonce"] || chunk.ChunkCount != 1 || len(chunk.NotFound) != tc.notFound {
			t.Errorf("%v: chunk %+v", tc.req, chunk)
		}
		if tc.names == nil {
			if len(chunk.Members) != 1 {
				t.Errorf("limit 1: %d members", len(chunk.Members))
			}
			continue
		}
		var got []string
		for _, m := range chunk.Members {
			got = append(got, m.User.Username)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.names) && !(len(got) == 0 && len(tc.names) == 0) {
			t.Errorf("%v: members %v, want %v", tc.req, got, tc.names)
		}
	}
}
