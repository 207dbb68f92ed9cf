-- the client application's database (the master's is POSTGRES_DB)
CREATE DATABASE client;
