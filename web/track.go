package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/sailstream/sailstream/telemetry"
)

// TrackSource holds the history of the fleet: Track returns the readings of
// device with from <= event time < to, in time order. The Timescale sink's
// store (timescale.Store) implements it; the web server needs no database
// driver of its own.
type TrackSource interface {
	Track(ctx context.Context, device string, from, to time.Time) ([]telemetry.Enriched, error)
}

// Track query limits.
const (
	// DefaultTrackWindow is the range of a track query without from: the
	// last hour before to (default now).
	DefaultTrackWindow = time.Hour
	// MaxTrackWindow is the longest range one track query may ask for.
	MaxTrackWindow = 7 * 24 * time.Hour
)

// Track is the body of GET /api/devices/:id/track.
type Track struct {
	Device string               `json:"device"`
	From   time.Time            `json:"from"`
	To     time.Time            `json:"to"`
	Points []telemetry.Enriched `json:"points"`
}

// apiError is the JSON body of every REST API error.
type apiError struct {
	Error string `json:"error"`
}

// track serves GET /api/devices/:id/track?from=&to= (RFC 3339) from the
// track source.
func (s *Server) track(c echo.Context) error {
	if s.cfg.Tracks == nil {
		return c.JSON(http.StatusNotImplemented, apiError{
			"track history needs a database: start the web server with a PostgreSQL/TimescaleDB URL (--pg / SAILSTREAM_PG)"})
	}
	device := c.Param("id")
	if err := telemetry.ValidateDevice(device); err != nil {
		return c.JSON(http.StatusBadRequest, apiError{err.Error()})
	}
	from, to, err := trackRange(c.QueryParam("from"), c.QueryParam("to"), time.Now())
	if err != nil {
		return c.JSON(http.StatusBadRequest, apiError{err.Error()})
	}
	points, err := s.cfg.Tracks.Track(c.Request().Context(), device, from, to)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil // the client went away
		}
		s.log.Warn("track query failed", "device", device, "from", from, "to", to, "err", err)
		return c.JSON(http.StatusServiceUnavailable, apiError{"track history unavailable: " + err.Error()})
	}
	if points == nil {
		points = []telemetry.Enriched{}
	}
	return c.JSON(http.StatusOK, Track{Device: device, From: from, To: to, Points: points})
}

// trackRange parses the from and to query parameters: to defaults to now,
// from to DefaultTrackWindow before to.
func trackRange(fromParam, toParam string, now time.Time) (from, to time.Time, err error) {
	to = now.UTC()
	if toParam != "" {
		if to, err = time.Parse(time.RFC3339Nano, toParam); err != nil {
			return from, to, fmt.Errorf("to: want an RFC 3339 time such as 2026-06-01T12:00:00Z: %w", err)
		}
	}
	from = to.Add(-DefaultTrackWindow)
	if fromParam != "" {
		if from, err = time.Parse(time.RFC3339Nano, fromParam); err != nil {
			return from, to, fmt.Errorf("from: want an RFC 3339 time such as 2026-06-01T11:00:00Z: %w", err)
		}
	}
	switch {
	case !from.Before(to):
		return from, to, fmt.Errorf("from %s is not before to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	case to.Sub(from) > MaxTrackWindow:
		return from, to, fmt.Errorf("range %s is longer than the %s one query may ask for", to.Sub(from), MaxTrackWindow)
	}
	return from.UTC(), to.UTC(), nil
}
