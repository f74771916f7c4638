package httpapi

// webhookRoutes registers the routes of this file.
func (s *Server) webhookRoutes(handle func(path string, res resource)) {}
