package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/reference"
)

// hostAuth is what a registry host asked for and what was obtained.
type hostAuth struct {
	mu      sync.Mutex
	scheme  string // "basic" or "bearer"; "" until challenged
	realm   string
	service string
	cred    Credential
	credSet bool
	tokens  map[string]token // by scope set
}

type token struct {
	value string
	// expires is when the token is no longer used: a little before the
	// registry's expiry.
	expires time.Time
}

// tokenSlack is how long before its expiry a token is no longer used
// (at most half its lifetime).
const tokenSlack = 10 * time.Second

func (c *Client) hostAuth(host string) *hostAuth {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.auth[host]
	if !ok {
		a = &hostAuth{tokens: map[string]token{}}
		c.auth[host] = a
	}
	return a
}

func scopeKey(scopes []string) string {
	s := append([]string(nil), scopes...)
	sort.Strings(s)
	return strings.Join(s, " ")
}

// authorize adds the Authorization the host asked for earlier, fetching a
// token for scopes when the host uses bearer tokens and none is cached.
func (c *Client) authorize(ctx context.Context, ep Endpoint, req *http.Request, scopes []string) error {
	if req.URL.Host != ep.Host {
		return nil // an upload location elsewhere: no credentials there
	}
	a := c.hostAuth(ep.Host)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.scheme {
	case "basic":
		if a.cred.Username != "" {
			req.SetBasicAuth(a.cred.Username, a.cred.Password)
		}
	case "bearer":
		key := scopeKey(scopes)
		t, ok := a.tokens[key]
		if !ok || time.Now().After(t.expires) {
			var err error
			if t, err = c.fetchToken(ctx, ep, a, scopes); err != nil {
				return err
			}
			a.tokens[key] = t
		}
		req.Header.Set("Authorization", "Bearer "+t.value)
	}
	return nil
}

// challenge handles a 401: it records the scheme the host asks for and,
// for bearer, fetches a token for scopes (dropping any cached one, which
// the registry refused). It fails when there is nothing more to try: a
// basic login the registry refused (sentAuth: the request carried it; a
// request sent before the scheme was known, in parallel with the one that
// learned it, is simply retried).
func (c *Client) challenge(ctx context.Context, ep Endpoint, headers []string, scopes []string, sentAuth bool) error {
	chs := parseChallenges(headers)
	a := c.hostAuth(ep.Host)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := c.loadCred(ctx, ep, a); err != nil {
		return err
	}
	for _, ch := range chs {
		switch ch.scheme {
		case "bearer":
			realm := ch.params["realm"]
			if realm == "" {
				return fmt.Errorf("registry %s asked for a bearer token without a realm", ep.Host)
			}
			a.scheme, a.realm, a.service = "bearer", realm, ch.params["service"]
			if s := ch.params["scope"]; s != "" && ch.params["error"] == "insufficient_scope" {
				scopes = append(scopes, strings.Fields(s)...)
			}
			t, err := c.fetchToken(ctx, ep, a, scopes)
			if err != nil {
				return err
			}
			a.tokens[scopeKey(scopes)] = t
			return nil
		case "basic":
			if a.cred.Username == "" {
				return fmt.Errorf("%w: registry %s requires authentication and there is no login for it (berth login %s)", ErrUnauthorized, ep.Host, loginName(ep))
			}
			if a.scheme == "basic" && sentAuth {
				return fmt.Errorf("%w: registry %s refused the login of %q", ErrUnauthorized, ep.Host, a.cred.Username)
			}
			a.scheme = "basic"
			return nil
		}
	}
	if len(headers) == 0 {
		return fmt.Errorf("%w: registry %s answered 401 without a WWW-Authenticate challenge", ErrUnauthorized, ep.Host)
	}
	return fmt.Errorf("%w: registry %s asks for an authentication scheme berth does not speak: %s", ErrUnauthorized, ep.Host, strings.Join(headers, ", "))
}

// refused returns the error of a 401 to a request that carried the basic
// login of the host, nil when the host does not use basic auth or there
// is no login (the 401 then speaks for itself).
func (c *Client) refused(ep Endpoint) error {
	a := c.hostAuth(ep.Host)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.scheme != "basic" || a.cred.Username == "" {
		return nil
	}
	return fmt.Errorf("%w: registry %s refused the login of %q", ErrUnauthorized, ep.Host, a.cred.Username)
}

func (c *Client) loadCred(ctx context.Context, ep Endpoint, a *hostAuth) error {
	if a.credSet || c.opts.Credentials == nil {
		return nil
	}
	cred, err := c.opts.Credentials(ctx, loginName(ep))
	if err != nil {
		return fmt.Errorf("credentials for %s: %w", loginName(ep), err)
	}
	a.cred, a.credSet = cred, true
	return nil
}

// fetchToken asks the host's token realm for a token for scopes, with the
// login if there is one (an identity token by the OAuth2 refresh-token
// grant, a password by basic auth), anonymously otherwise.
func (c *Client) fetchToken(ctx context.Context, ep Endpoint, a *hostAuth, scopes []string) (token, error) {
	if err := c.loadCred(ctx, ep, a); err != nil {
		return token{}, err
	}
	realm, err := url.Parse(a.realm)
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") {
		return token{}, fmt.Errorf("registry %s: bad token realm %q", ep.Host, a.realm)
	}
	var req *http.Request
	if a.cred.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.cred.IdentityToken},
			"service": {a.service}, "scope": {strings.Join(scopes, " ")}, "client_id": {"berth"}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := realm.Query()
		if a.service != "" {
			q.Set("service", a.service)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		realm.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
		if err == nil && a.cred.Username != "" {
			req.SetBasicAuth(a.cred.Username, a.cred.Password)
		}
	}
	if err != nil {
		return token{}, err
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	resp, err := c.httpClient(ep).Do(req)
	if err != nil {
		return token{}, fmt.Errorf("get token from %s: %w", redact(a.realm), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		err := newError(resp)
		if a.cred.Username == "" && a.cred.IdentityToken == "" {
			return token{}, fmt.Errorf("%w: registry %s requires authentication and there is no login for it (berth login %s): %v", ErrUnauthorized, ep.Host, loginName(ep), err)
		}
		return token{}, fmt.Errorf("%w: registry %s refused the login of %q: %v", ErrUnauthorized, ep.Host, a.cred.Username, err)
	}
	if resp.StatusCode != http.StatusOK {
		return token{}, fmt.Errorf("get token from %s: %w", redact(a.realm), newError(resp))
	}
	var body struct {
		Token       string    `json:"token"`
		AccessToken string    `json:"access_token"`
		ExpiresIn   int       `json:"expires_in"`
		IssuedAt    time.Time `json:"issued_at"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return token{}, fmt.Errorf("get token from %s: bad answer: %w", redact(a.realm), err)
	}
	t := token{value: body.Token}
	if t.value == "" {
		t.value = body.AccessToken
	}
	if t.value == "" {
		return token{}, fmt.Errorf("get token from %s: the answer has no token", redact(a.realm))
	}
	// The spec's default lifetime is 60 s; the issue time is the
	// server's clock, so count from now.
	life := time.Duration(body.ExpiresIn) * time.Second
	if life <= 0 {
		life = 60 * time.Second
	}
	// Stop using it a little before it expires: tokenSlack, or half the
	// lifetime of a short-lived token, which would otherwise never be
	// reused.
	t.expires = time.Now().Add(life - min(tokenSlack, life/2))
	return t, nil
}

// challenge is one parsed WWW-Authenticate challenge.
type authChallenge struct {
	scheme string // lower case
	params map[string]string
}

// parseChallenges parses WWW-Authenticate headers (RFC 7235): a scheme,
// then comma-separated key=value or key="quoted value" parameters.
func parseChallenges(headers []string) []authChallenge {
	var out []authChallenge
	for _, h := range headers {
		s := strings.TrimSpace(h)
		for s != "" {
			i := strings.IndexAny(s, " \t")
			scheme := s
			if i >= 0 {
				scheme, s = s[:i], strings.TrimSpace(s[i:])
			} else {
				s = ""
			}
			ch := authChallenge{scheme: strings.ToLower(strings.TrimSuffix(scheme, ",")), params: map[string]string{}}
			for s != "" {
				// A parameter is a token, then "=" (with optional
				// white space around it, RFC 7235's BWS); anything
				// else is the next challenge's scheme.
				k := strings.IndexAny(s, " \t=,")
				if k <= 0 {
					break
				}
				rest := strings.TrimLeft(s[k:], " \t")
				if !strings.HasPrefix(rest, "=") {
					break
				}
				key := strings.ToLower(s[:k])
				s = strings.TrimSpace(rest[1:])
				var val string
				if strings.HasPrefix(s, `"`) {
					var b strings.Builder
					j := 1
					for ; j < len(s) && s[j] != '"'; j++ {
						if s[j] == '\\' && j+1 < len(s) {
							j++
						}
						b.WriteByte(s[j])
					}
					val, s = b.String(), s[min(j+1, len(s)):]
				} else {
					j := strings.IndexByte(s, ',')
					if j < 0 {
						j = len(s)
					}
					val, s = strings.TrimSpace(s[:j]), s[j:]
				}
				ch.params[key] = val
				s = strings.TrimSpace(s)
				s = strings.TrimPrefix(s, ",")
				s = strings.TrimSpace(s)
			}
			out = append(out, ch)
		}
	}
	return out
}

// loginName is the registry name an endpoint's login is kept under, as
// the user logs in: its host, and "docker.io" for Docker Hub's.
func loginName(ep Endpoint) string {
	if ep.Host == "registry-1.docker.io" || ep.Host == "index.docker.io" {
		return reference.DefaultDomain
	}
	return ep.Host
}
