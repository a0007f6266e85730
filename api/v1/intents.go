package v1

import (
	"fmt"
	"strings"
)

// Intent is a Discord gateway intent, spelled as in Discord's documentation.
// +kubebuilder:validation:Enum=GUILDS;GUILD_MEMBERS;GUILD_MODERATION;GUILD_EXPRESSIONS;GUILD_INTEGRATIONS;GUILD_WEBHOOKS;GUILD_INVITES;GUILD_VOICE_STATES;GUILD_PRESENCES;GUILD_MESSAGES;GUILD_MESSAGE_REACTIONS;GUILD_MESSAGE_TYPING;DIRECT_MESSAGES;DIRECT_MESSAGE_REACTIONS;DIRECT_MESSAGE_TYPING;MESSAGE_CONTENT;GUILD_SCHEDULED_EVENTS;AUTO_MODERATION_CONFIGURATION;AUTO_MODERATION_EXECUTION;GUILD_MESSAGE_POLLS;DIRECT_MESSAGE_POLLS
type Intent string

// intentBits maps each intent to its bit in the identify payload's intents field.
// The enum marker on Intent must list exactly these names; a unit test keeps them in step.
var intentBits = map[Intent]uint{
	"GUILDS":                        0,
	"GUILD_MEMBERS":                 1,
	"GUILD_MODERATION":              2,
	"GUILD_EXPRESSIONS":             3,
	"GUILD_INTEGRATIONS":            4,
	"GUILD_WEBHOOKS":                5,
	"GUILD_INVITES":                 6,
	"GUILD_VOICE_STATES":            7,
	"GUILD_PRESENCES":               8,
	"GUILD_MESSAGES":                9,
	"GUILD_MESSAGE_REACTIONS":       10,
	"GUILD_MESSAGE_TYPING":          11,
	"DIRECT_MESSAGES":               12,
	"DIRECT_MESSAGE_REACTIONS":      13,
	"DIRECT_MESSAGE_TYPING":         14,
	"MESSAGE_CONTENT":               15,
	"GUILD_SCHEDULED_EVENTS":        16,
	"AUTO_MODERATION_CONFIGURATION": 20,
	"AUTO_MODERATION_EXECUTION":     21,
	"GUILD_MESSAGE_POLLS":           24,
	"DIRECT_MESSAGE_POLLS":          25,
}

// KnownIntents returns every intent name this API accepts.
func KnownIntents() []Intent {
	out := make([]Intent, 0, len(intentBits))
	for i := range intentBits {
		out = append(out, i)
	}
	return out
}

// IntentMask returns the identify payload's bit field for the given intents.
func IntentMask(intents []Intent) (int64, error) {
	var mask int64
	for _, in := range intents {
		bit, ok := intentBits[in]
		if !ok {
			return 0, fmt.Errorf("unknown gateway intent %q", in)
		}
		mask |= 1 << bit
	}
	return mask, nil
}

// ParseIntents reads a comma-separated list of intent names, as the operator writes it
// into SHARDKEEPER_INTENTS.
func ParseIntents(list string) ([]Intent, error) {
	var out []Intent
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		in := Intent(strings.ToUpper(f))
		if _, ok := intentBits[in]; !ok {
			return nil, fmt.Errorf("unknown gateway intent %q", f)
		}
		out = append(out, in)
	}
	return out, nil
}
