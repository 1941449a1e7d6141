//! The GraphQL transport at `/graphql`: thin resolvers over the same services as REST.
