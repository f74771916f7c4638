package slots

// Field names under which the API reports validation errors.
const (
	FieldCron     = "cron_definition"
	FieldInterval = "interval_definition"
)

// ValidationError carries the exact message for the API's 400 body:
// {"<Field>": ["<Message>"]}.
type ValidationError struct {
	Field   string
	Message string
}

// Error returns Message alone so that callers which only have the error
// value can still put the verbatim contract text into the response body.
func (e *ValidationError) Error() string { return e.Message }
