package alerts

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/serin-dev/serin/api/v1alpha1"
)

// DefaultUsername is the sender name when the provider sets none.
const DefaultUsername = "serin"

// Payload renders m in the provider's format. It is a pure function.
func Payload(spec v1alpha1.AlertProviderSpec, m Message) ([]byte, error) {
	if m.Severity == "" {
		m.Severity = v1alpha1.SeverityInfo
	}
	user := spec.Username
	if user == "" {
		user = DefaultUsername
	}
	var v any
	switch spec.Type {
	case v1alpha1.AlertSlack:
		v = slackPayload(spec.Channel, user, m)
	case v1alpha1.AlertMSTeams:
		v = teamsPayload(m)
	case v1alpha1.AlertDiscord:
		v = discordPayload(user, m)
	case v1alpha1.AlertGeneric:
		v = genericPayload(m)
	default:
		return nil, fmt.Errorf("alert provider type %q is not slack, msteams, discord or generic", spec.Type)
	}
	return json.Marshal(v)
}

func target(m Message) string { return m.Name + "." + m.Namespace }

// fields are the message's fields after the phase, which always comes first.
func fields(m Message) []Field {
	out := []Field{{Name: "Phase", Value: string(m.Phase)}}
	return append(out, m.Fields...)
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

type slackAttachment struct {
	Color      string       `json:"color"`
	AuthorName string       `json:"author_name"`
	Text       string       `json:"text"`
	MrkdwnIn   []string     `json:"mrkdwn_in"`
	Fields     []slackField `json:"fields,omitempty"`
}

type slackMessage struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username"`
	IconEmoji   string            `json:"icon_emoji"`
	Attachments []slackAttachment `json:"attachments"`
}

func slackPayload(channel, user string, m Message) slackMessage {
	color := map[v1alpha1.AlertSeverity]string{v1alpha1.SeverityInfo: "good", v1alpha1.SeverityWarn: "warning", v1alpha1.SeverityError: "danger"}[m.Severity]
	a := slackAttachment{Color: color, AuthorName: target(m), Text: m.Text, MrkdwnIn: []string{"text"}}
	for _, f := range fields(m) {
		a.Fields = append(a.Fields, slackField{Title: f.Name, Value: f.Value, Short: len(f.Value) < 30})
	}
	return slackMessage{Channel: channel, Username: user, IconEmoji: ":rocket:", Attachments: []slackAttachment{a}}
}

// Teams Workflows webhooks take a message with Adaptive Card attachments.
type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
}

func teamsPayload(m Message) teamsMessage {
	color := map[v1alpha1.AlertSeverity]string{v1alpha1.SeverityInfo: "Good", v1alpha1.SeverityWarn: "Warning", v1alpha1.SeverityError: "Attention"}[m.Severity]
	var facts []map[string]string
	for _, f := range fields(m) {
		facts = append(facts, map[string]string{"title": f.Name, "value": f.Value})
	}
	card := teamsCard{
		Schema:  "http://adaptivecards.io/schemas/adaptive-card.json",
		Type:    "AdaptiveCard",
		Version: "1.4",
		Body: []map[string]any{
			{"type": "TextBlock", "text": target(m), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
			{"type": "TextBlock", "text": m.Text, "wrap": true},
			{"type": "FactSet", "facts": facts},
		},
	}
	return teamsMessage{Type: "message", Attachments: []teamsAttachment{{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}

type discordField struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Inline bool   `json:"inline"`
}

type discordEmbed struct {
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Color       int            `json:"color"`
	Fields      []discordField `json:"fields,omitempty"`
	Timestamp   string         `json:"timestamp"`
}

type discordMessage struct {
	Username string         `json:"username"`
	Embeds   []discordEmbed `json:"embeds"`
}

func discordPayload(user string, m Message) discordMessage {
	color := map[v1alpha1.AlertSeverity]int{v1alpha1.SeverityInfo: 0x2EB67D, v1alpha1.SeverityWarn: 0xECB22E, v1alpha1.SeverityError: 0xE01E5A}[m.Severity]
	e := discordEmbed{Title: target(m), Description: m.Text, Color: color, Timestamp: m.Time.UTC().Format("2006-01-02T15:04:05Z07:00")}
	for _, f := range fields(m) {
		value := f.Value
		if value == "" {
			value = "-" // Discord refuses empty field values
		}
		e.Fields = append(e.Fields, discordField{Name: f.Name, Value: value, Inline: len(f.Value) < 30})
	}
	return discordMessage{Username: user, Embeds: []discordEmbed{e}}
}

type genericMessage struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Phase     string            `json:"phase"`
	Severity  string            `json:"severity"`
	Message   string            `json:"message"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Timestamp string            `json:"timestamp"`
}

func genericPayload(m Message) genericMessage {
	g := genericMessage{Name: m.Name, Namespace: m.Namespace, Phase: string(m.Phase), Severity: string(m.Severity),
		Message: m.Text, Timestamp: strconv.FormatInt(m.Time.UnixMilli(), 10)}
	if len(m.Fields) > 0 {
		g.Metadata = map[string]string{}
		for _, f := range m.Fields {
			g.Metadata[f.Name] = f.Value
		}
	}
	return g
}
