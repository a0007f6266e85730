package guildcache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// object is a JSON object decoded one level deep: every value stays raw JSON.
type object map[string]json.RawMessage

func parseObject(raw []byte) (object, error) {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, err
	}
	if o == nil {
		return nil, errors.New("not a JSON object")
	}
	return o, nil
}

// encode writes the object back; values are already valid JSON.
func (o object) encode() []byte {
	b, err := json.Marshal(map[string]json.RawMessage(o))
	if err != nil {
		// Every value came out of json.Unmarshal or from this package: valid JSON.
		panic(fmt.Sprintf("guildcache: encoding a cached object: %v", err))
	}
	return b
}

// parseArray decodes a JSON array of raw elements; null decodes as empty.
func parseArray(raw json.RawMessage) ([]json.RawMessage, error) {
	var a []json.RawMessage
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, err
	}
	return a, nil
}

// parseSnowflake reads a snowflake sent as a string (as Discord does) or a number.
func parseSnowflake(raw json.RawMessage) (uint64, error) {
	s := string(bytes.TrimSpace(raw))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("bad snowflake %s", raw)
	}
	return id, nil
}

// field reads one snowflake field of an object.
func (o object) snowflake(name string) (uint64, error) {
	raw, ok := o[name]
	if !ok {
		return 0, fmt.Errorf("no %q", name)
	}
	id, err := parseSnowflake(raw)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", name, err)
	}
	return id, nil
}

// userID is the "id" of the object's "user" field: how members and presences are keyed.
func (o object) userID() (uint64, error) {
	raw, ok := o["user"]
	if !ok {
		return 0, errors.New(`no "user"`)
	}
	u, err := parseObject(raw)
	if err != nil {
		return 0, fmt.Errorf(`"user": %w`, err)
	}
	return u.snowflake("id")
}

// isTrue reports whether the field is the JSON literal true.
func (o object) isTrue(name string) bool {
	return string(bytes.TrimSpace(o[name])) == "true"
}

// isNull reports whether the field is absent or null.
func (o object) isNull(name string) bool {
	raw, ok := o[name]
	return !ok || string(bytes.TrimSpace(raw)) == "null"
}

// merge overlays patch's top-level fields on the object held as old.
func merge(old []byte, patch object) []byte {
	base, err := parseObject(old)
	if err != nil {
		panic(fmt.Sprintf("guildcache: a cached object does not decode: %v", err))
	}
	for k, v := range patch {
		base[k] = v
	}
	return base.encode()
}
